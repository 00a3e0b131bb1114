"""The real operator, with exactly the chart's ServiceAccount and RBAC, scraped by real Prometheus.

The chart is installed by `helm install` into the envtest API server in `namespaces` mode;
kopf runs the operator's handlers (KopfRunner) logged in with a token of the chart's
ServiceAccount, so every request is authorized by the chart's roles. A customization must get its
first version and trainer Job without one Forbidden answer, and Prometheus must scrape the
operator's own `/metrics` and answer every operator query of the dashboard and the alerts. The
trainer pod template the operator wrote is admitted by the API server under an enforced
`restricted` profile.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import (
    CHART_DIR,
    OPERATOR_METRICS,
    REPO_ROOT,
    Render,
    metric_names,
    one,
)
from tests.chart.podsecurity import check_restricted
from tests.chart.promserver import PrometheusServer, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXAMPLE = REPO_ROOT / "examples" / "text-classification-lora.yaml"
GROUP_PATH = "/apis/bespoke.dev/v1alpha1"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("BESPOKE_ENVTEST_REQUIRED") == "1":
        pytest.fail(f"BESPOKE_ENVTEST_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def envtest() -> Iterator[Any]:
    """A fresh control plane with the chart's CRDs, from the envtest harness."""
    if importlib.util.find_spec("bespoke_operator.handlers") is None:
        pytest.skip("the operator's handlers are not built yet")
    try:
        harness = importlib.import_module("tests.operator.cluster.envtest_cluster")
    except ImportError:
        _skip_or_fail("the envtest harness (tests/operator/cluster/envtest_cluster.py) is not here")
    try:
        harness.find_binaries(controller_manager=False)
    except harness.BinariesMissingError as missing:
        _skip_or_fail(str(missing))
    crds = sorted((CHART_DIR / "crds").glob("*.yaml"))
    if not crds:
        pytest.skip("charts/bespoke/crds/ is not generated yet (make manifests)")
    with harness.EnvtestCluster() as cluster:
        cluster.apply_crds(crds)
        yield cluster


def _apply_chart(
    envtest: Any,
    helm: str,
    *,
    release: str,
    namespace: str,
    watched: str,
    tmp_path: Path,
    without: tuple[str, str, str] | None = None,
) -> None:
    """`helm install` the chart; `without` = (apiGroup, resource, verb) removes one permission
    on the way in (a post-renderer), so the server stores the chart minus exactly that."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"watch": {"mode": "namespaces", "namespaces": [watched]}}))
    command = [helm, "--kubeconfig", str(envtest.kubeconfig), "install", release, str(CHART_DIR)]
    command += ["--namespace", namespace, "--values", str(values)]
    if without is not None:
        command += ["--post-renderer", sys.executable]
        for arg in (str(Path(__file__).with_name("drop_permission.py")), *without):
            command += ["--post-renderer-args", arg]
    installed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert installed.returncode == 0, installed.stderr


def _operator_queries(render: Render) -> list[str]:
    """Dashboard and alert expressions that read only the operator's own series."""
    dashboard = json.loads((CHART_DIR / "dashboards" / "bespoke.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    rules = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    exprs += [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    selected = [e for e in exprs if metric_names(e) and metric_names(e) <= OPERATOR_METRICS]
    replacements = {"$__rate_interval": "1m", "$namespace": ".*", "$customization": ".*"}
    for name, value in replacements.items():
        selected = [e.replace(name, value) for e in selected]
    return selected


def test_operator_works_with_only_the_chart_rbac_and_is_scraped(
    *,
    envtest: Any,
    helm: str,
    render: Render,
    prometheus_bin: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kopf.testing import KopfRunner

    suffix = uuid.uuid4().hex[:6]
    system, team, release = f"bespoke-{suffix}", f"team-{suffix}", "rel"
    for namespace in (system, team):
        envtest.create_namespace(namespace)
    _apply_chart(envtest, helm, release=release, namespace=system, watched=team, tmp_path=tmp_path)
    kubeconfig = envtest.service_account_kubeconfig(system, f"{release}-bespoke")

    port = free_port()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("BESPOKE_METRICS_PORT", str(port))
    monkeypatch.setenv("BESPOKE_RECONCILE_INTERVAL_SECONDS", "3")
    # Leader election as the chart configures it: the Lease in the release namespace.
    monkeypatch.setenv("BESPOKE_LEADER_ELECTION", "true")
    monkeypatch.setenv("BESPOKE_LEADER_ELECTION_LEASE", f"{release}-bespoke-operator")
    monkeypatch.setenv("BESPOKE_OPERATOR_NAMESPACE", system)
    monkeypatch.setenv("POD_ID", f"{release}-bespoke-operator-0")
    customization = yaml.safe_load(EXAMPLE.read_text())
    customization["metadata"]["namespace"] = team
    name = customization["metadata"]["name"]

    targets = {"operator": [(f"127.0.0.1:{port}", {})]}
    args = ["run", "--standalone", "--namespace", team, "-m", "bespoke_operator.handlers"]
    with (
        PrometheusServer(prometheus_bin, tmp_path, targets=targets) as prometheus,
        KopfRunner(args, timeout=90) as runner,
    ):
        created = envtest.request(
            "POST", f"{GROUP_PATH}/namespaces/{team}/modelcustomizations", customization
        )
        assert created.status == 201, created.message
        jobs = _wait(
            lambda: envtest.request(
                "GET",
                f"/apis/batch/v1/namespaces/{team}/jobs",
                params={"labelSelector": f"bespoke.dev/customization={name}"},
            ).body["items"]
        )
        assert jobs, "the operator created no trainer Job"
        status = _wait(
            lambda: (
                envtest.request("GET", f"{GROUP_PATH}/namespaces/{team}/modelcustomizations/{name}")
                .body.get("status", {})
                .get("observedGeneration")
            )
        )
        assert status == 1
        lease = envtest.request(
            "GET",
            f"/apis/coordination.k8s.io/v1/namespaces/{system}/leases/{release}-bespoke-operator",
        )
        assert lease.status == 200, lease.message
        assert lease.body["spec"]["holderIdentity"] == f"{release}-bespoke-operator-0"
        prometheus.wait_for('bespoke_reconcile_total{result="success"} > 0')
        for query in _operator_queries(render):
            answer = prometheus.query(query)
            assert answer["status"] == "success", (query, answer.get("error"))
    assert runner.exception is None
    _assert_admitted_under_restricted(envtest, jobs[0]["spec"]["template"], suffix)
    assert "Forbidden" not in runner.output
    assert "status=403" not in runner.output
    assert "HTTP/1.1 403" not in runner.output


def test_a_missing_permission_shows_as_a_stalled_condition_not_silence(
    *, envtest: Any, helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's RBAC minus `create` on Jobs: the customization says why nothing trains."""
    from kopf.testing import KopfRunner

    suffix = uuid.uuid4().hex[:6]
    system, team, release = f"bespoke-{suffix}", f"team-{suffix}", "cut"
    for namespace in (system, team):
        envtest.create_namespace(namespace)
    _apply_chart(
        envtest,
        helm,
        release=release,
        namespace=system,
        watched=team,
        tmp_path=tmp_path,
        without=("batch", "jobs", "create"),
    )
    monkeypatch.setenv(
        "KUBECONFIG", str(envtest.service_account_kubeconfig(system, f"{release}-bespoke"))
    )
    monkeypatch.setenv("BESPOKE_METRICS_PORT", "0")
    customization = yaml.safe_load(EXAMPLE.read_text())
    customization["metadata"]["namespace"] = team
    name = customization["metadata"]["name"]
    path = f"{GROUP_PATH}/namespaces/{team}/modelcustomizations/{name}"
    args = ["run", "--standalone", "--namespace", team, "-m", "bespoke_operator.handlers"]
    with KopfRunner(args, timeout=90) as runner:
        created = envtest.request(
            "POST", f"{GROUP_PATH}/namespaces/{team}/modelcustomizations", customization
        )
        assert created.status == 201, created.message

        def stalled() -> dict[str, Any] | None:
            conditions = envtest.request("GET", path).body.get("status", {}).get("conditions", [])
            return next(
                (c for c in conditions if c["type"] == "Stalled" and c["status"] == "True"), None
            )

        condition = _wait(stalled)
    assert runner.exception is None
    assert condition is not None, "a missing permission left no Stalled condition"
    assert condition["reason"] == "ApiRequestFailed"
    assert "403" in condition["message"]
    assert "jobs" in condition["message"]
    jobs = envtest.request("GET", f"/apis/batch/v1/namespaces/{team}/jobs").body["items"]
    assert jobs == []


def _assert_admitted_under_restricted(envtest: Any, template: dict[str, Any], suffix: str) -> None:
    """The operator's trainer pod template, as a Pod, in a namespace enforcing `restricted`."""
    assert check_restricted(template["spec"], template.get("metadata")) == []
    namespace = f"pss-{suffix}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    envtest.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": labels},
            }
        ),
    )
    account = template["spec"].get("serviceAccountName", "default")
    envtest.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": namespace},
            }
        ),
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "trainer",
            "namespace": namespace,
            "labels": template.get("metadata", {}).get("labels", {}),
        },
        "spec": template["spec"],
    }
    result = envtest.kubectl(
        "create", "--dry-run=server", "-f", "-", input_text=json.dumps(pod), check=False
    )
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr


def _wait(probe: Any, attempts: int = 120) -> Any:
    """Poll a probe until it returns something truthy (controllers converge eventually)."""
    result = probe()
    for _ in range(attempts):
        if result:
            return result
        time.sleep(0.5)
        result = probe()
    return result
