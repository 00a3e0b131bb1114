"""Drift monitoring for served versions: text features, Evidently statistics, Prometheus gauges."""

from bespoke_monitor.drift import DriftMethod, DriftResult, compute_drift, drift_between, featurize
from bespoke_monitor.features import FEATURES, text_features
from bespoke_monitor.gauges import DriftCollector

__all__ = [
    "FEATURES",
    "DriftCollector",
    "DriftMethod",
    "DriftResult",
    "compute_drift",
    "drift_between",
    "featurize",
    "text_features",
]
