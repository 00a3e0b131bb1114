"""The alert rules and dashboard queries in a real Prometheus server (Debian `prometheus`).

Prometheus scrapes itself and a real `bentoml serve` (a minimal probe service, for BentoML's own
request metrics). The example model's service and the operator's endpoint join as targets once
those components exist (see promserver.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.chartlib import CHART_DIR, Render, find_tool, one
from tests.chart.promserver import PrometheusServer, free_port

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


PROBE_DIR = Path(__file__).parent / "bentoml_probe"
# The labels the chart's PodMonitor relabelings attach to serving targets.
SERVING_LABELS = {
    "namespace": "ml",
    "customization": "probe",
    "version": "1",
    "component": "serving",
}


@pytest.fixture(scope="module")
def bentoml_probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `bentoml serve` on a free port; yields host:port once it is ready."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("bentoml") / "serve.log"
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "probe_service:MetricsProbe",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        **os.environ,
        "BENTOML_HOME": str(log_path.parent / "home"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROBE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/readyz", process, log_path)
            yield f"127.0.0.1:{port}"
        finally:
            # bentoml serve runs its workers in the same session: end the whole group.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(240):
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} never answered")


def _echo(target: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://{target}/echo", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.slow
def test_bentoml_dashboard_queries_return_series_from_a_real_bentoml_serve(
    prometheus_bin: str, bentoml_probe: str, tmp_path: Path
) -> None:
    targets = {"serving": [(bentoml_probe, SERVING_LABELS)]}
    with PrometheusServer(prometheus_bin, tmp_path, targets=targets) as server:
        server.wait_for('up{component="serving"} == 1')
        assert {_echo(bentoml_probe, b'{"text": "hello"}') for _ in range(20)} == {200}
        assert _echo(bentoml_probe, b'{"wrong": 1}') // 100 == 4
        queries = [q for q in _dashboard_queries() if "bentoml_" in q]
        assert len(queries) == 6
        for query in queries:
            series = server.wait_for(query, timeout=60)
            assert all(s["metric"].get("customization", "probe") == "probe" for s in series)
        by_code = server.wait_for(
            'sum by (http_response_code) (bentoml_service_request_total{endpoint="/echo"})'
        )
        counts = {s["metric"]["http_response_code"]: float(s["value"][1]) for s in by_code}
        assert counts["200"] == 20
        assert any(code.startswith("4") and n == 1 for code, n in counts.items()), counts
