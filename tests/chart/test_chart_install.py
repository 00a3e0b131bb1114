"""`helm install` into a real API server, which validates every object, and Pod Security admission.

Needs a cluster (the envtest harness's kube-apiserver is enough: no kubelet is involved): point
`BESPOKE_TEST_KUBECONFIG` at its kubeconfig. Without it these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.chart.chartlib import ALL_TOGGLES, CHART_DIR, Manifest, Render, find_tool
from tests.chart.podsecurity import pod_spec_of

pytestmark = pytest.mark.cluster

WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob"}
MONITORING_RESOURCES = {
    "servicemonitors.monitoring.coreos.com": ("metrics", "serviceMonitor"),
    "podmonitors.monitoring.coreos.com": ("metrics", "podMonitor"),
    "prometheusrules.monitoring.coreos.com": ("prometheusRule",),
}


class Cluster:
    """kubectl and helm bound to one kubeconfig."""

    def __init__(self, kubeconfig: str, kubectl: str, helm: str) -> None:
        self.kubeconfig, self.kubectl_bin, self.helm_bin = kubeconfig, kubectl, helm

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.helm_bin, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        result = self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def cluster(helm: str) -> Cluster:
    kubeconfig = os.environ.get("BESPOKE_TEST_KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).is_file():
        pytest.skip("BESPOKE_TEST_KUBECONFIG does not name a kubeconfig of a running API server")
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: run hack/tools.sh")
    cluster = Cluster(kubeconfig, kubectl, helm)
    assert cluster.kubectl("version").returncode == 0, "the API server does not answer"
    return cluster


@pytest.fixture
def release(cluster: Cluster) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"bespoke-{suffix}", f"bespoke-system-{suffix}"
    cluster.namespace(namespace)
    yield name, namespace
    cluster.helm("uninstall", name, "--namespace", namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _install(cluster: Cluster, name: str, namespace: str, values: Manifest, tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = cluster.helm(
        "install", name, str(CHART_DIR), "--namespace", namespace, "--values", str(values_file)
    )
    assert result.returncode == 0, result.stderr


def _installed_toggles(cluster: Cluster) -> Manifest:
    """Every toggle whose objects the API server can store: the dashboard always, the
    prometheus-operator kinds only where their CRDs are installed."""
    toggles: dict[str, Any] = {"grafanaDashboard": {"enabled": True}}
    for crd, path in MONITORING_RESOURCES.items():
        if cluster.kubectl("get", "crd", crd).returncode == 0:
            node = toggles
            for key in path:
                node = node.setdefault(key, {})
            node["enabled"] = True
    return toggles


def test_helm_install_with_defaults(
    cluster: Cluster, release: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = release
    _install(cluster, name, namespace, {}, tmp_path)
    deployment = cluster.kubectl(
        "get", "deployment", f"{name}-operator", "-n", namespace, "-o", "json"
    )
    assert deployment.returncode == 0, deployment.stderr
    assert json.loads(deployment.stdout)["spec"]["strategy"]["type"] == "Recreate"


def test_helm_install_with_every_installable_toggle_namespaced(
    cluster: Cluster, release: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = release
    watched = [f"{namespace}-a", f"{namespace}-b"]
    for ns in watched:
        cluster.namespace(ns)
    values = {**_installed_toggles(cluster), "watch": {"mode": "namespaces", "namespaces": watched}}
    try:
        _install(cluster, name, namespace, values, tmp_path)
        for ns in watched:
            binding = cluster.kubectl("get", "rolebinding", f"{name}-operator", "-n", ns)
            assert binding.returncode == 0, binding.stderr
    finally:
        for ns in watched:
            cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_pod_templates_are_admitted_under_enforced_restricted(
    cluster: Cluster, render: Render
) -> None:
    namespace = f"pss-{uuid.uuid4().hex[:6]}"
    cluster.namespace(
        namespace,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    try:
        # Control: the server must refuse a pod that breaks the profile, or it checks nothing.
        bare = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "example:1"}]},
        }
        refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(bare))
        assert refused.returncode != 0, "the API server does not enforce Pod Security admission"
        assert "violates PodSecurity" in refused.stderr
        workloads = [m for m in render(ALL_TOGGLES) if m["kind"] in WORKLOAD_KINDS]
        assert workloads
        for workload in workloads:
            metadata, spec = pod_spec_of(workload)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": workload["metadata"]["name"],
                    "namespace": namespace,
                    "labels": metadata.get("labels", {}),
                },
                "spec": spec,
            }
            result = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
            assert result.returncode == 0, result.stderr
            assert "would violate PodSecurity" not in result.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
