"""The metrics each task computes, the names gates and the champion delta may refer to."""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CAUSAL_LM_METRICS",
    "CLASSIFICATION_METRICS",
    "FAIRNESS_METRICS",
    "LOWER_IS_BETTER",
    "METRICS_BY_TASK",
    "SHARE_METRICS",
    "MetricName",
    "Task",
    "headline_metric",
]

Task = Literal["text-classification", "causal-lm"]

MetricName = Literal[
    "accuracy",
    "macroF1",
    "calibrationError",
    "evalLoss",
    "perplexity",
    "exactMatch",
    "tokenF1",
]

CLASSIFICATION_METRICS: Final[tuple[MetricName, ...]] = (
    "accuracy",
    "macroF1",
    "calibrationError",
    "evalLoss",
)
CAUSAL_LM_METRICS: Final[tuple[MetricName, ...]] = (
    "evalLoss",
    "perplexity",
    "exactMatch",
    "tokenF1",
)
METRICS_BY_TASK: Final[dict[str, tuple[MetricName, ...]]] = {
    "text-classification": CLASSIFICATION_METRICS,
    "causal-lm": CAUSAL_LM_METRICS,
}
#: Metrics whose values lie between 0 and 1 (a gate's `min` above 1 could never be met).
SHARE_METRICS: Final[tuple[MetricName, ...]] = (
    "accuracy",
    "macroF1",
    "calibrationError",
    "exactMatch",
    "tokenF1",
)
#: Metrics where a smaller value is the better model (the champion delta flips for these).
LOWER_IS_BETTER: Final[frozenset[str]] = frozenset({"calibrationError", "evalLoss", "perplexity"})

FAIRNESS_METRICS: Final[tuple[str, ...]] = (
    "demographicParityDifference",
    "equalizedOddsDifference",
    "worstGroupAccuracy",
)


def headline_metric(task: str) -> MetricName:
    """The one metric shown in `kubectl get` for a task."""
    return "accuracy" if task == "text-classification" else "evalLoss"
