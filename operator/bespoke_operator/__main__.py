"""`python -m bespoke_operator` is the `bespoke` command."""

from bespoke_operator.cli import main

main()
