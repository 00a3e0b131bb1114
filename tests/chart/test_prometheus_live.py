"""The alert rules and dashboard queries in a real Prometheus server (Debian `prometheus`).

Prometheus scrapes itself here, which proves the harness; the scrape of a real `bentoml serve`
and of the operator's endpoint joins it once those components exist (see promserver.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from chartlib import CHART_DIR, Render, find_tool, one
from promserver import PrometheusServer

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$namespace": ".*",
    "$customization": ".*",
}


def _substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((CHART_DIR / "dashboards" / "bespoke.json").read_text())
    return [
        _substitute(t["expr"])
        for p in dashboard["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    ]


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    path = find_tool("prometheus")
    if path is None:
        pytest.skip("prometheus is not installed: apt-get install prometheus (hack/tools.sh)")
    return path


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, render: Render, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    rule_file = workdir / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}))
    with PrometheusServer(
        prometheus_bin, workdir, targets={}, rule_files=[rule_file], scrape_self=True
    ) as server:
        yield server


def test_prometheus_scrapes_a_real_target(prometheus: PrometheusServer) -> None:
    series = prometheus.wait_for('up{job="prometheus"} == 1')
    assert series[0]["value"][1] == "1"


def test_prometheus_loads_every_alert_rule_healthy(prometheus: PrometheusServer) -> None:
    prometheus.wait_for("up")
    rules = prometheus.rules()
    assert {r["name"] for r in rules} == {
        "BespokeDriftDetected",
        "BespokeTrainingFailed",
        "BespokeVersionRejected",
        "BespokeServingUnavailable",
        "BespokeReconcileErrors",
    }
    assert all(r["health"] in {"ok", "unknown"} and not r.get("lastError") for r in rules), rules


@pytest.mark.parametrize("expr", _dashboard_queries())
def test_dashboard_query_is_accepted_by_prometheus(prometheus: PrometheusServer, expr: str) -> None:
    answer = prometheus.query(expr)
    assert answer["status"] == "success", answer.get("error")


def test_query_errors_are_reported(prometheus: PrometheusServer) -> None:
    answer = prometheus.query("sum(rate(up[1m])")
    assert answer["status"] == "error"
