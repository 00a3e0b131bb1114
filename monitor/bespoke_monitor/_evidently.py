"""The one adapter around Evidently (pinned to 0.7.x): everything else sees plain Python values.

`column_drift` is what the monitor runs: Evidently's own statistical tests, chosen per column
exactly as its `DataDriftPreset` chooses them, without the preset's report. The report builds
Plotly figures for every column inside each metric's calculation (no setting turns them off),
which was about four fifths of a drift run's CPU, spent on charts nobody sees. `run_drift_preset`
runs the full preset; tests hold the two to the same scores.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Evidently 0.7 raises deprecation warnings from its own imports (its legacy helpers touch
# `numpy.core`, its UI uses litestar's deprecated `Dependency`): they are Evidently's to fix, and
# would be errors under pytest's warnings-as-errors, so they are silenced for this import only.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metrics.data_drift import embedding_drift_methods
    from evidently.presets import DataDriftPreset

__all__ = [
    "ColumnDrift",
    "EmbeddingDrift",
    "EvidentlyDrift",
    "column_drift",
    "embedding_drift",
    "run_drift_preset",
]

# Methods that Evidently applies to categorical columns as well; the others (ks, wasserstein)
# are numeric-only, so categorical columns keep Evidently's automatic choice.
_CATEGORICAL_CAPABLE = frozenset({"psi", "jensenshannon"})
_METHOD_IN_NAME = re.compile(r"method=([A-Za-z_]+)")


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's score for one column, the statistical method it chose or was told, and its
    verdict (`drifted`; only `column_drift` reports it, the preset's summary does not)."""

    score: float
    method: str
    drifted: bool = False


@dataclass(frozen=True)
class EvidentlyDrift:
    """What the preset reported: drifted column count and share, and per-column scores."""

    drifted_columns: int
    drifted_share: float
    columns: dict[str, ColumnDrift]


def column_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    method: str | None,
) -> EvidentlyDrift:
    """Evidently's drift test on each column, as `DataDriftPreset` would run it."""
    kinds = [(c, ColumnType.Numerical) for c in numerical]
    kinds += [(c, ColumnType.Categorical) for c in categorical]
    columns: dict[str, ColumnDrift] = {}
    drifted = 0
    for column, kind in kinds:
        # The preset drops infinities and missing values before testing, and so does this.
        ref = reference[column].replace([np.inf, -np.inf], np.nan).dropna()
        cur = current[column].replace([np.inf, -np.inf], np.nan).dropna()
        if ref.empty or cur.empty:
            raise ValueError(f"column `{column}` has no values to compare")
        chosen = method if kind is ColumnType.Numerical or method in _CATEGORICAL_CAPABLE else None
        test = get_stattest(ref, cur, kind, chosen)
        with np.errstate(divide="ignore", invalid="ignore"):
            result = test(ref, cur, kind, None)
        drifted += bool(result.drifted)
        # The preset names a chosen method by its display name, a configured one by its key.
        columns[column] = ColumnDrift(
            float(result.drift_score), chosen or test.display_name, bool(result.drifted)
        )
    share = drifted / len(kinds) if kinds else 0.0
    return EvidentlyDrift(drifted, share, columns)


@dataclass(frozen=True)
class EmbeddingDrift:
    """Evidently's verdict on two sets of embedding vectors."""

    score: float
    drifted: bool
    method: str


def embedding_drift(reference: np.ndarray, current: np.ndarray) -> EmbeddingDrift:
    """Evidently's default embeddings drift test: a classifier told to separate the two sets.

    The score is its ROC AUC on held-out rows; above 0.55 (0.5 is chance) counts as drift.
    """
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError(
            f"embeddings must be two matrices of the same width, got {reference.shape} "
            f"and {current.shape}"
        )
    test = embedding_drift_methods.model()
    score, drifted, method = test(pd.DataFrame(current), pd.DataFrame(reference))
    return EmbeddingDrift(float(score), bool(drifted), f"{method} roc_auc")


def run_drift_preset(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    method: str | None,
    drift_share: float,
) -> EvidentlyDrift:
    """Run Evidently's DataDriftPreset on two feature frames with the given column types."""
    definition = DataDefinition(
        numerical_columns=list(numerical), categorical_columns=list(categorical)
    )
    preset = DataDriftPreset(
        columns=[*numerical, *categorical],
        drift_share=drift_share,
        num_method=method,
        cat_method=method if method in _CATEGORICAL_CAPABLE else None,
        include_tests=False,
    )
    # Evidently also correlates the columns; a constant column (no unknown words at all) divides
    # by a zero deviation there, which says nothing about drift.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report([preset]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return _parse(snapshot.dict())


def _parse(result: dict[str, Any]) -> EvidentlyDrift:
    drifted_columns = 0
    drifted_share = 0.0
    columns: dict[str, ColumnDrift] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        kind = str(config.get("type", ""))
        if kind.endswith(":DriftedColumnsCount"):
            drifted_columns = int(metric["value"]["count"])
            drifted_share = float(metric["value"]["share"])
        elif kind.endswith(":ValueDrift"):
            found = _METHOD_IN_NAME.search(str(metric.get("metric_name", "")))
            chosen = config.get("method") or (found.group(1) if found else "auto")
            columns[str(config["column"])] = ColumnDrift(float(metric["value"]), str(chosen))
    return EvidentlyDrift(drifted_columns, drifted_share, columns)
