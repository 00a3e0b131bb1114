"""The drift statistics a window can be compared with (no Evidently import: settings read it)."""

from __future__ import annotations

from typing import Literal

__all__ = ["DriftMethod", "drift_strength", "is_p_value"]

DriftMethod = Literal["auto", "psi", "ks", "wasserstein", "jensenshannon"]

# Evidently's statistical tests whose score is a p-value (low = drift): by configured key and by
# the display name the preset reports for a test it chose itself ("K-S p_value", ...). Every
# other score Bespoke can get is a distance or an AUC, where high = drift.
_P_VALUE_TESTS: frozenset[str] = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "anderson",
        "cramer_von_mises",
        "es",
        "fisher_exact",
        "g_test",
        "mannw",
        "t_test",
        "Anderson-Darling",
        "Cramer-von Mises",
        "Epps-Singleton",
        "Fisher's Exact test",
        "Mann-Whitney U-rank test",
    }
)


def is_p_value(method: str) -> bool:
    """Whether a per-feature drift score from this method is a p-value (low = drift)."""
    return method in _P_VALUE_TESTS or method.endswith("p_value")


def drift_strength(score: float, method: str) -> float:
    """A per-feature score turned to one direction: higher always means more drift.

    Distances (PSI, Wasserstein, Jensen-Shannon) and the embeddings classifier's ROC AUC are
    kept; a p-value `p` becomes `1 - p`, so 0.99 reads "the test is 99% sure it drifted".
    """
    return 1.0 - score if is_p_value(method) else score
