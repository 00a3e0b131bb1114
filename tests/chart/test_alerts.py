"""The PrometheusRule's alerts through the real promtool: syntax, unit tests and runbook links."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import KNOWN_METRICS, REPO_ROOT, Render, metric_names, one
from tests.chart.promexprs import ALERTS as EXPECTED_ALERTS
from tests.chart.promexprs import SCRAPED

RULES_ON = {"prometheusRule": {"enabled": True}}
UNIT_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
# Alerts on series that exist only when the chart's monitors scrape them.
NEEDS_POD_MONITOR = {"BespokeServingUnavailable", "BespokeDriftReadingStale"}
NEEDS_SERVICE_MONITOR = {"BespokeOperatorAbsent"}


def _groups(render: Render, *values: dict[str, Any]) -> list[dict[str, Any]]:
    """The rule groups with the scrape toggles on, unless `values` switch them off."""
    rendered = render(SCRAPED, RULES_ON, *values)
    groups: list[dict[str, Any]] = one(rendered, "PrometheusRule")["spec"]["groups"]
    return groups


def _alerts(render: Render, *values: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in _groups(render, *values) for rule in group["rules"]]


def _write_rules(render: Render, directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": _groups(render)}))
    return path


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_check_rules_passes(render: Render, promtool: str, tmp_path: Path) -> None:
    result = _promtool(promtool, "check", "rules", str(_write_rules(render, tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_check_rules_rejects_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert _promtool(promtool, "check", "rules", str(path)).returncode != 0


def test_alert_unit_tests_pass(render: Render, promtool: str, tmp_path: Path) -> None:
    _write_rules(render, tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = _promtool(promtool, "test", "rules", str(tmp_path / UNIT_TESTS.name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    silent = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    assert fired >= EXPECTED_ALERTS
    assert silent >= EXPECTED_ALERTS


def test_the_issue_alerts_exist_with_severity_summary_and_description(render: Render) -> None:
    alerts = _alerts(render)
    assert {a["alert"] for a in alerts} == EXPECTED_ALERTS
    for alert in alerts:
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}, alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
        assert all(alert["annotations"].values()), alert["alert"]


@pytest.mark.parametrize(
    ("toggle", "gone"),
    [("podMonitor", NEEDS_POD_MONITOR), ("serviceMonitor", NEEDS_SERVICE_MONITOR)],
)
def test_alerts_on_unscraped_series_are_left_out_when_their_monitor_is_off(
    render: Render, toggle: str, gone: set[str]
) -> None:
    """Without the chart's monitor the series are missing: `unless`/`absent` would always fire."""
    off = {"metrics": {toggle: {"enabled": False}}}
    assert {a["alert"] for a in _alerts(render, off)} == EXPECTED_ALERTS - gone


def test_serving_alert_reads_what_the_spec_expects_not_the_production_version(
    render: Render,
) -> None:
    """A production version alone fired it with serving off, at 0 replicas and when deleted."""
    alerts = {a["alert"]: a for a in _alerts(render)}
    expr = alerts["BespokeServingUnavailable"]["expr"]
    assert "bespoke_serving_expected_replicas" in expr
    assert "bespoke_production_version" not in expr


def test_alerts_use_only_metrics_that_exist(render: Render) -> None:
    for alert in _alerts(render):
        names = metric_names(alert["expr"])
        assert names, alert["alert"]
        assert names <= KNOWN_METRICS, (alert["alert"], names - KNOWN_METRICS)


def _anchors(markdown: str) -> set[str]:
    # GitHub's heading anchors: lowercase, punctuation dropped, spaces become hyphens.
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_points_at_a_section_that_says_what_to_do(render: Render) -> None:
    markdown = RUNBOOKS.read_text()
    anchors = _anchors(markdown)
    sections = re.split(r"^## ", markdown, flags=re.MULTILINE)
    for alert in _alerts(render):
        url = alert["annotations"]["runbook_url"]
        base, anchor = url.split("#")
        assert base.endswith("/docs/runbooks.md")
        assert anchor in anchors, (alert["alert"], anchor)
        section = next(s for s in sections if s.startswith(alert["alert"]))
        assert "What it means" in section, alert["alert"]
        assert "What to do" in section, alert["alert"]


def test_runbook_base_and_extra_labels_are_configurable(render: Render) -> None:
    values = {
        "prometheusRule": {
            "runbookBaseUrl": "https://wiki.example.com/bespoke",
            "additionalAlertLabels": {"team": "ml-platform"},
            "driftFor": "1h",
        }
    }
    alerts = {a["alert"]: a for a in _alerts(render, values)}
    assert all(a["labels"]["team"] == "ml-platform" for a in alerts.values())
    assert alerts["BespokeDriftDetected"]["for"] == "1h"
    assert alerts["BespokeDriftDetected"]["annotations"]["runbook_url"] == (
        "https://wiki.example.com/bespoke#bespokedriftdetected"
    )


@pytest.mark.parametrize("ratio", [0.05, 0.5])
def test_reconcile_error_ratio_is_the_threshold(render: Render, ratio: float) -> None:
    values = {"prometheusRule": {"reconcileErrorRatio": ratio}}
    alerts = {a["alert"]: a for a in _alerts(render, values)}
    assert alerts["BespokeReconcileErrors"]["expr"].rstrip().endswith(f"> {ratio}")
