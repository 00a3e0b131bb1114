"""Synthetic text traffic for drift tests: a stable reference distribution and planted shifts."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["REFERENCE_WORDS", "reference_traffic", "shifted_traffic"]

REFERENCE_WORDS = [f"word{i}" for i in range(200)]
_FOREIGN_WORDS = [f"zzforeign{i}" for i in range(200)]


def reference_traffic(rows: int, seed: int) -> pd.DataFrame:
    """Texts of 5-15 known words, labels ~60/40, confident predictions."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 16, rows)
    texts = [" ".join(rng.choice(REFERENCE_WORDS, n)) for n in lengths]
    predictions = rng.choice(["positive", "negative"], rows, p=[0.6, 0.4])
    confidence = rng.beta(8, 2, rows)
    return pd.DataFrame({"text": texts, "prediction": predictions, "confidence": confidence})


def shifted_traffic(rows: int, seed: int) -> pd.DataFrame:
    """Longer texts full of unseen words, a flipped label mix and unsure predictions."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(25, 60, rows)
    texts = [" ".join(rng.choice(REFERENCE_WORDS + _FOREIGN_WORDS * 3, n)) for n in lengths]
    predictions = rng.choice(["positive", "negative"], rows, p=[0.1, 0.9])
    confidence = rng.beta(2, 2, rows)
    return pd.DataFrame({"text": texts, "prediction": predictions, "confidence": confidence})
