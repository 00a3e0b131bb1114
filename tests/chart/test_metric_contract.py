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
