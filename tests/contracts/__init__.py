"""Agreement tests across component boundaries (operator, trainer, serving, monitor)."""
