"""`compute_drift`: production traffic against the version's reference data, on text features."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from bespoke_monitor import _evidently
from bespoke_monitor.features import (
    CATEGORICAL_FEATURES,
    EMBEDDINGS_FEATURE,
    NUMERICAL_FEATURES,
    text_features,
)
from bespoke_monitor.methods import DriftMethod

__all__ = ["DriftMethod", "DriftResult", "compute_drift", "drift_between", "featurize"]


class DriftResult(BaseModel):
    """One drift reading; `model_dump(by_alias=True)` is the `/drift` JSON the operator reads."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    version: int | None = None
    checked_at: datetime = Field(alias="checkedAt")
    window_rows: int = Field(alias="windowRows", ge=0)
    dataset_drift: bool = Field(alias="datasetDrift")
    drift_share: float = Field(alias="driftShare", ge=0.0, le=1.0)
    method: DriftMethod
    threshold: float = Field(ge=0.0, le=1.0)
    features: dict[str, float]
    feature_methods: dict[str, str] = Field(alias="featureMethods")
    prediction_mix: dict[str, float] = Field(alias="predictionMix")
    #: The features whose own test found drift (the operator records them in status).
    drifted_features: list[str] = Field(default_factory=list, alias="driftedFeatures")

    def payload(self) -> dict[str, object]:
        """The JSON-ready document served at `/drift`."""
        return self.model_dump(by_alias=True, mode="json")


def featurize(frame: pd.DataFrame, vocabulary: Collection[str]) -> pd.DataFrame:
    """Features of a traffic frame with a `text` column and optional `prediction`, `confidence`."""
    if "text" not in frame.columns:
        raise ValueError("the traffic frame needs a `text` column")
    texts = frame["text"].astype(str).tolist()
    predictions = frame["prediction"].tolist() if "prediction" in frame.columns else None
    confidences = frame["confidence"].tolist() if "confidence" in frame.columns else None
    return text_features(texts, vocabulary, predictions, confidences)


def drift_between(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    method: DriftMethod = "auto",
    threshold: float = 0.5,
    labels: Sequence[str] = (),
    version: int | None = None,
    now: datetime | None = None,
    reference_embeddings: np.ndarray | None = None,
    current_embeddings: np.ndarray | None = None,
) -> DriftResult:
    """Drift between two frames that already hold features (see `featurize`).

    With both embedding matrices (one row per text), the embeddings count as one more feature,
    `embeddings`, tested with Evidently's embeddings drift method.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` is a drifted-feature share in [0, 1], got {threshold}")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError("drift needs at least 2 rows in both the reference and the current window")
    shared = [c for c in current.columns if c in reference.columns]
    numerical = [c for c in NUMERICAL_FEATURES if c in shared]
    categorical = [c for c in CATEGORICAL_FEATURES if c in shared]
    report = _evidently.column_drift(
        reference[numerical + categorical],
        current[numerical + categorical],
        numerical=numerical,
        categorical=categorical,
        method=None if method == "auto" else method,
    )
    # Evidently can return NaN for a column that is constant in both frames: no evidence of
    # drift, and NaN cannot travel in JSON.
    scores = {k: v.score for k, v in report.columns.items() if math.isfinite(v.score)}
    methods = {k: v.method for k, v in report.columns.items()}
    drifted, tested = report.drifted_columns, len(report.columns)
    drifted_features = [k for k, v in report.columns.items() if v.drifted]
    if reference_embeddings is not None and current_embeddings is not None:
        embedded = _evidently.embedding_drift(reference_embeddings, current_embeddings)
        scores[EMBEDDINGS_FEATURE] = embedded.score
        methods[EMBEDDINGS_FEATURE] = embedded.method
        drifted += embedded.drifted
        tested += 1
        if embedded.drifted:
            drifted_features.append(EMBEDDINGS_FEATURE)
    share = min(max(drifted / tested if tested else 0.0, 0.0), 1.0)
    return DriftResult(
        version=version,
        checked_at=now or datetime.now(UTC),
        window_rows=len(current),
        dataset_drift=drifted > 0 and share >= threshold,
        drift_share=share,
        method=method,
        threshold=threshold,
        features=scores,
        feature_methods=methods,
        prediction_mix=prediction_mix(current, labels),
        drifted_features=drifted_features,
    )


def prediction_mix(features: pd.DataFrame, labels: Sequence[str] = ()) -> dict[str, float]:
    """Share of each predicted label in a frame; known labels appear even when absent."""
    if "predictedLabel" not in features.columns or len(features) == 0:
        return dict.fromkeys(labels, 0.0)
    counts = features["predictedLabel"].value_counts()
    mix = dict.fromkeys(labels, 0.0)
    for label, count in counts.items():
        if not labels or label in mix:
            mix[str(label)] = float(count) / len(features)
    return mix


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    vocabulary: Collection[str] = (),
    method: DriftMethod = "auto",
    threshold: float = 0.5,
    labels: Sequence[str] = (),
    version: int | None = None,
) -> DriftResult:
    """Drift of `current` traffic against `reference` (both with `text`, optional `prediction`
    and `confidence` columns), on text-derived features, with Evidently doing the statistics."""
    vocab = frozenset(vocabulary)
    return drift_between(
        featurize(reference, vocab),
        featurize(current, vocab),
        method=method,
        threshold=threshold,
        labels=labels,
        version=version,
    )
