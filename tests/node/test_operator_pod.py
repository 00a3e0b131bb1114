"""`helm install` of the chart on the real node: the operator runs as a pod from its own image.

The release namespace and the watched namespace enforce the Pod Security `restricted` profile by
label, so the kubelet runs the operator exactly as the chart's security context says (uid 65532
without a passwd entry, read-only root, no capabilities). The operator then has to reach the API
server through the `kubernetes` Service (kube-proxy) by its cluster DNS name (CoreDNS) with the
chart's ServiceAccount, and its trainer pod must be admitted under the same profile.
"""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import CHART_DIR
from tests.node.node_cluster import NodeCluster, wait_until

pytestmark = [pytest.mark.node, pytest.mark.slow]

log = logging.getLogger(__name__)

SYSTEM, TEAM, RELEASE = "bespoke-system", "team-a", "bespoke"
EXAMPLE = CHART_DIR.parents[1] / "examples" / "text-classification-lora.yaml"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def snapshot(node: NodeCluster, stage: str) -> None:
    """`kubectl get mc,mv` (and pods) into the test log, one block per stage."""
    answer = node.kubectl("get", "mc,mv,jobs,pods", "-A", "-o", "wide", check=False)
    log.info("== %s\n%s%s", stage, answer.stdout, answer.stderr)


def namespace(node: NodeCluster, name: str) -> None:
    """A namespace that enforces the Pod Security `restricted` profile."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": RESTRICTED},
    }
    node.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))


def helm_install(
    node: NodeCluster, helm: str, *, release: str, namespace_name: str, watched: str
) -> subprocess.CompletedProcess[str]:
    """`helm install` of the chart with its default images, watching one namespace."""
    values = {"watch": {"mode": "namespaces", "namespaces": [watched]}}
    return node.run_in_node(
        [
            helm,
            f"--kubeconfig={node.admin_kubeconfig}",
            "install",
            release,
            str(CHART_DIR),
            "--namespace",
            namespace_name,
            "--values",
            "-",
            "--wait",
            "--timeout=5m",
        ],
        input_text=yaml.safe_dump(values),
        check=False,
    )


def operator_pods(node: NodeCluster, namespace_name: str) -> list[Any]:
    selector = "app.kubernetes.io/component=operator"
    pods: list[Any] = node.get_json("pods", "-n", namespace_name, "-l", selector)["items"]
    return pods


def leader(node: NodeCluster, namespace_name: str, release: str) -> str:
    """The operator pod that holds the chart's leader-election Lease (its POD_ID)."""
    leases = node.get_json("lease", "-n", namespace_name)["items"]
    (lease,) = [lease for lease in leases if lease["metadata"]["name"].startswith(release)]
    holder: str = lease["spec"].get("holderIdentity", "")
    return holder


def test_helm_install_runs_the_operator_pod_under_restricted(
    node: NodeCluster, operator_image: str, helm: str
) -> None:
    for name in (SYSTEM, TEAM):
        namespace(node, name)
    installed = helm_install(node, helm, release=RELEASE, namespace_name=SYSTEM, watched=TEAM)
    snapshot(node, "after helm install")
    pods = operator_pods(node, SYSTEM)
    assert installed.returncode == 0, (
        installed.stderr + node.kubectl("describe", "pods", "-n", SYSTEM, check=False).stdout
    )
    replicas = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["operator"]["replicas"]
    assert len(pods) == replicas
    for pod in pods:
        assert pod["spec"]["containers"][0]["image"] == operator_image
        statuses = pod["status"]["containerStatuses"]
        assert statuses[0]["ready"], statuses
        assert statuses[0]["restartCount"] == 0, statuses
    # One of them leads: the Lease holder is a pod's name (POD_ID, from the downward API).
    holder = wait_until(lambda: leader(node, SYSTEM, RELEASE), bool, timeout_s=120)
    assert holder in {pod["metadata"]["name"] for pod in pods}

    # The operator at work: it reads a customization and writes its status and trainer Job.
    customization = yaml.safe_load(EXAMPLE.read_text())
    customization["metadata"]["namespace"] = TEAM
    # JSON, not YAML: PyYAML writes "5e-4" bare, which YAML 1.1 (kubectl) reads as a number.
    node.kubectl("apply", "-f", "-", input_text=json.dumps(customization))
    name = customization["metadata"]["name"]
    observed = wait_until(
        lambda: node.get_json("mc", name, "-n", TEAM).get("status", {}).get("observedGeneration"),
        lambda generation: generation == 1,
        timeout_s=180,
    )
    jobs = wait_until(lambda: node.get_json("jobs", "-n", TEAM)["items"], bool, timeout_s=120)
    snapshot(node, "after the customization")
    logs = node.kubectl("logs", "-n", SYSTEM, holder, check=False).stdout
    assert observed == 1, logs[-4000:]
    assert jobs, logs[-4000:]
    # The trainer pod the Job asks for passes restricted admission in TEAM (no FailedCreate).
    pods = wait_until(
        lambda: node.get_json("pods", "-n", TEAM, "-l", f"job-name={jobs[0]['metadata']['name']}")[
            "items"
        ],
        bool,
        timeout_s=120,
    )
    events = node.kubectl("get", "events", "-n", TEAM, check=False).stdout
    assert pods, events
    for pod in operator_pods(node, SYSTEM):
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, logs[-4000:]
    assert "Traceback" not in logs, logs[-4000:]
