"""The drift statistics a window can be compared with (no Evidently import: settings read it)."""

from __future__ import annotations

from typing import Literal

__all__ = ["DriftMethod"]

DriftMethod = Literal["auto", "psi", "ks", "wasserstein", "jensenshannon"]
