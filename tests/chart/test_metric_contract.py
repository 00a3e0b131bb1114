"""The metric names the dashboard and alerts use against what the components really export."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import KNOWN_METRICS, OPERATOR_METRICS

_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def test_operator_metrics_are_part_of_the_known_set() -> None:
    assert OPERATOR_METRICS <= KNOWN_METRICS


def test_the_operator_exports_every_series_the_dashboard_and_alerts_use() -> None:
    metrics = pytest.importorskip(
        "bespoke_operator.metrics", reason="the operator's metrics module is not built yet"
    )
    operator_metrics = metrics.OperatorMetrics()
    exported = {
        f"{family.name}{suffix}"
        for family in operator_metrics.registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    }
    assert sorted(OPERATOR_METRICS - exported) == []


def test_counters_start_at_zero_once_a_customization_is_reconciled() -> None:
    """A series born at 1 has no increase(): the first failure would never alert."""
    metrics = pytest.importorskip("bespoke_operator.metrics")
    api = pytest.importorskip("bespoke_operator.api")
    operator_metrics = metrics.OperatorMetrics()
    operator_metrics.observe_status("ml", "tickets", api.ModelCustomizationStatus())
    started = {
        (sample.name, sample.labels.get("outcome", "")): sample.value
        for family in operator_metrics.registry.collect()
        for sample in family.samples
        if sample.labels.get("customization") == "tickets"
    }
    for outcome in ("Promoted", "Rejected", "Failed", "AwaitingApproval"):
        assert started[("bespoke_versions_total", outcome)] == 0
    for name in ("promotions", "rollbacks", "drift_retrains"):
        assert started[(f"bespoke_{name}_total", "")] == 0
    # The duration histogram only feeds quantile panels, never an alert on increase(): it is not
    # pre-started, which spares a dozen bucket series per customization.
    assert ("bespoke_training_duration_seconds_count", "") not in started
