"""The Grafana dashboard: stable uid, data source variable, PromQL that promtool parses.

Every query names only metrics the operator, the serving service or BentoML export.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import CHART_DIR, KNOWN_METRICS, metric_names

DASHBOARD: dict[str, Any] = json.loads((CHART_DIR / "dashboards" / "bespoke.json").read_text())
# Grafana replaces these before the query reaches Prometheus; use values of the same type.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": "ml",
    "$customization": "tickets",
}


def _panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def _expressions() -> list[tuple[str, str]]:
    exprs = [(p["title"], t["expr"]) for p in _panels() for t in p["targets"]]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+), *\w+\)", variable["definition"])
            assert inner, variable["definition"]
            exprs.append((f"variable {variable['name']}", inner.group(1)))
    return exprs


def _substitute(expr: str) -> str:
    # Longest names first: $__rate_interval must not be read as $__range + suffix.
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def test_uid_and_title_are_stable() -> None:
    assert DASHBOARD["uid"] == "bespoke-overview"
    assert DASHBOARD["title"] == "Bespoke"


def test_datasource_is_a_variable_used_by_every_panel_and_query() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area


@pytest.mark.parametrize(
    "needle",
    [
        "bespoke_production_version",
        "bespoke_version_metric",
        "bespoke_drift_share_ratio",
        "bespoke_drift_feature_score",
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bespoke_training_duration_seconds_bucket",
        "bespoke_versions_total",
        "bespoke_promotions_total",
        "bespoke_rollbacks_total",
    ],
)
def test_the_issue_views_are_on_the_dashboard(needle: str) -> None:
    assert any(needle in expr for _, expr in _expressions())


def test_latency_percentiles_come_from_bentoml_histograms() -> None:
    latency = next(p for p in _panels() if p["title"] == "Latency percentiles")
    quantiles = {
        re.search(r"histogram_quantile\(([0-9.]+)", t["expr"]).group(1)  # type: ignore[union-attr]
        for t in latency["targets"]
    }
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_queries_name_only_metrics_that_exist() -> None:
    for title, expr in _expressions():
        names = metric_names(expr)
        assert names, title
        assert names <= KNOWN_METRICS, (title, names - KNOWN_METRICS)


def test_every_query_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    # promtool has no offline query parser, but `check rules` parses every recording rule's expr.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": _substitute(expr)}
        for i, (_, expr) in enumerate(_expressions())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_most_drifted_features_panel_ranks_by_a_score_where_high_means_drift() -> None:
    """It used to rank the top p-values, the least drifted features, as the most drifted."""
    panel = next(p for p in _panels() if p["title"] == "Most drifted features")
    (target,) = panel["targets"]
    assert target["expr"].startswith("topk(10, ")
    assert "bespoke_drift_feature_score" in target["expr"]
    assert "bespoke_drift_feature_p_value" not in target["expr"]
    from bespoke_monitor.methods import drift_strength

    # A feature tested with K-S at p=0.001 drifted more than one at p=0.6, and so on for a
    # distance: the exported score orders them that way for both kinds of test.
    assert drift_strength(0.001, "K-S p_value") > drift_strength(0.6, "K-S p_value")
    assert drift_strength(0.001, "ks") > drift_strength(0.6, "chisquare")
    assert drift_strength(0.4, "Wasserstein distance (normed)") > drift_strength(0.02, "psi")
