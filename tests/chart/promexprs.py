"""The PromQL the chart ships: dashboard queries (Grafana variables filled in) and alert rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.chart.chartlib import CHART_DIR, Render, one

__all__ = ["ALERTS", "SCRAPED", "alert_expr", "dashboard_queries", "rule_file", "rule_groups"]

# What Grafana would put in for its variables: every namespace and customization.
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


def dashboard_queries() -> list[str]:
    """Every target expression of the dashboard, ready to send to Prometheus."""
    dashboard = json.loads((CHART_DIR / "dashboards" / "bespoke.json").read_text())
    return [
        _substitute(t["expr"])
        for p in dashboard["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    ]


# Every alert of the chart's PrometheusRule (with the scrape toggles below on).
ALERTS = {
    "BespokeDriftDetected",
    "BespokeTrainingFailed",
    "BespokeVersionRejected",
    "BespokeServingUnavailable",
    "BespokeReconcileErrors",
    "BespokeOperatorAbsent",
    "BespokeDriftReadingStale",
    "BespokeStalled",
    "BespokeDriftRetrainFailing",
}

# The scrape toggles some alerts depend on, switched on so that every alert is rendered.
SCRAPED: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}
}


def rule_groups(render: Render, **values: Any) -> list[dict[str, Any]]:
    """The PrometheusRule's groups as the chart renders them with `values` set (and scraping on)."""
    rendered = render(SCRAPED, {"prometheusRule": {"enabled": True, **values}})
    groups: list[dict[str, Any]] = one(rendered, "PrometheusRule")["spec"]["groups"]
    return groups


def alert_expr(groups: list[dict[str, Any]], name: str) -> str:
    """The expression of the alert called `name`."""
    (expr,) = [r["expr"] for g in groups for r in g["rules"] if r["alert"] == name]
    return str(expr)


def rule_file(groups: list[dict[str, Any]], workdir: Path) -> Path:
    """The groups as a Prometheus rule file in `workdir`."""
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path
