"""The alert rules and dashboard queries in a real Prometheus server (Debian `prometheus`).

Fast checks: the chart's rules load healthy and every dashboard query parses in a Prometheus that
scrapes itself. test_prometheus_live_stack.py evaluates the same expressions against the real
services.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chart.chartlib import Render
from tests.chart.promexprs import ALERTS, dashboard_queries, rule_file, rule_groups
from tests.chart.promserver import PrometheusServer


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, render: Render, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = [rule_file(rule_groups(render), workdir)]
    with PrometheusServer(
        prometheus_bin, workdir, targets={}, rule_files=rules, scrape_self=True
    ) as server:
        yield server


def test_prometheus_scrapes_a_real_target(prometheus: PrometheusServer) -> None:
    series = prometheus.wait_for('up{job="prometheus"} == 1')
    assert series[0]["value"][1] == "1"


def test_prometheus_loads_every_alert_rule_healthy(prometheus: PrometheusServer) -> None:
    prometheus.wait_for("up")
    rules = prometheus.rules()
    assert {r["name"] for r in rules} == ALERTS
    assert all(r["health"] in {"ok", "unknown"} and not r.get("lastError") for r in rules), rules


@pytest.mark.parametrize("expr", dashboard_queries())
def test_dashboard_query_is_accepted_by_prometheus(prometheus: PrometheusServer, expr: str) -> None:
    answer = prometheus.query(expr)
    assert answer["status"] == "success", answer.get("error")


def test_query_errors_are_reported(prometheus: PrometheusServer) -> None:
    answer = prometheus.query("sum(rate(up[1m])")
    assert answer["status"] == "error"
