"""Prometheus gauges for the latest drift reading, rendered from one result so they match `/drift`.

A custom collector rather than `Gauge` objects: under `bentoml serve` prometheus-client runs in
multiprocess mode, where `Gauge` values go to shared files and would be exported a second time
(with a `pid` label) by BentoML's own collector.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bespoke_monitor.drift import DriftResult
from bespoke_monitor.features import FEATURES
from bespoke_monitor.methods import drift_strength, is_p_value

__all__ = ["DriftCollector"]

_BASE_LABELS = ("namespace", "customization", "version")


class DriftCollector(Collector):
    """Exports `bespoke_drift_*` and `bespoke_prediction_mix_ratio` for one served version."""

    def __init__(
        self, namespace: str, customization: str, version: int, labels: Sequence[str] = ()
    ) -> None:
        self._base = (namespace, customization, str(version))
        self._labels = tuple(labels)
        self._lock = threading.Lock()
        self._result: DriftResult | None = None
        self._window_rows = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def update(self, result: DriftResult) -> None:
        """Publish a new reading."""
        with self._lock:
            self._result = result
            self._window_rows = result.window_rows

    def set_window_rows(self, rows: int) -> None:
        """Track the window's fill between readings."""
        with self._lock:
            self._window_rows = rows

    def exposition(self) -> str:
        """The text exposition format of these gauges only."""
        return generate_latest(self.registry).decode("utf-8")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            result, rows = self._result, self._window_rows
        yield self._gauge("bespoke_drift_window_rows", "Rows in the current traffic window", rows)
        if result is None:
            return
        yield self._gauge(
            "bespoke_drift_share_ratio", "Share of features that drifted", result.drift_share
        )
        yield self._gauge(
            "bespoke_drift_detected",
            "1 when the drifted-feature share reached the threshold",
            1.0 if result.dataset_drift else 0.0,
        )
        yield self._gauge(
            "bespoke_drift_last_run_timestamp_seconds",
            "When drift was last computed",
            result.checked_at.timestamp(),
        )
        # One direction for every method (higher = more drift), so the features can be ranked;
        # the p-values themselves, for those tested with one, in a family of their own.
        scores = GaugeMetricFamily(
            "bespoke_drift_feature_score",
            "Drift strength per feature, higher = more drift: the distance, or 1 - p-value",
            labels=[*_BASE_LABELS, "feature"],
        )
        p_values = GaugeMetricFamily(
            "bespoke_drift_feature_p_value",
            "p-value of the features tested with a p-value test (lower = more drift)",
            labels=[*_BASE_LABELS, "feature"],
        )
        for feature in FEATURES:
            if feature not in result.features:
                continue
            score, method = result.features[feature], result.feature_methods.get(feature, "")
            scores.add_metric([*self._base, feature], drift_strength(score, method))
            if is_p_value(method):
                p_values.add_metric([*self._base, feature], score)
        yield scores
        yield p_values
        mix = GaugeMetricFamily(
            "bespoke_prediction_mix_ratio",
            "Share of each predicted label in the current window",
            labels=[*_BASE_LABELS, "label"],
        )
        # Only the version's own labels: keeps the label set bounded whatever the traffic is.
        for label in self._labels:
            mix.add_metric([*self._base, label], result.prediction_mix.get(label, 0.0))
        yield mix

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=list(_BASE_LABELS))
        family.add_metric(list(self._base), value)
        return family
