"""`helm install` into a real API server, which validates every object, and Pod Security admission.

The API server is the envtest harness's etcd + kube-apiserver
(tests/operator/cluster/envtest_cluster.py,
binaries from hack/envtest.sh), started once for this module; `BESPOKE_TEST_KUBECONFIG` points at
another cluster instead. Without either the tests skip (fail with `BESPOKE_ENVTEST_REQUIRED=1`).

These are literal `helm install`s. They once could not be: helm asks the server's `/version`
(discovery works on envtest) and checks it against the chart's `kubeVersion: ">=1.29.0-0"`. A
kube-apiserver built from the Go modules without the `-X k8s.io/component-base/version.*`
link flags reports `v0.0.0-master`, a valid semver that sorts below 1.29, so helm refused with
"chart requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v0.0.0-master"
before sending anything. hack/envtest.sh now stamps its builds as Kubernetes' own build does
(and replaces unstamped cached binaries); `test_the_server_reports_a_stamped_version` and
`test_an_unstamped_server_version_is_what_helm_refuses` pin both halves of that.
"""

from __future__ import annotations

import contextlib
import importlib
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

UNSTAMPED_VERSION = "v0.0.0-master"
# The Kubernetes release hack/envtest.sh builds (its default BESPOKE_ENVTEST_K8S_VERSION).
ENVTEST_KUBERNETES = os.environ.get("BESPOKE_ENVTEST_K8S_VERSION", "1.34.4")
CRDS = ("modelcustomizations.bespoke.dev", "modelversions.bespoke.dev")
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


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("BESPOKE_ENVTEST_REQUIRED") == "1":
        pytest.fail(f"BESPOKE_ENVTEST_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _kubeconfig() -> Iterator[str]:
    """A kubeconfig of a running API server: the given one, or a fresh envtest control plane."""
    given = os.environ.get("BESPOKE_TEST_KUBECONFIG", "")
    if given:
        yield given
        return
    try:
        envtest = importlib.import_module("tests.operator.cluster.envtest_cluster")
    except ImportError:
        _skip_or_fail("the envtest harness (tests/operator/cluster/envtest_cluster.py) is not here")
    try:
        envtest.find_binaries(controller_manager=False)
    except envtest.BinariesMissingError as missing:
        _skip_or_fail(str(missing))
    with envtest.EnvtestCluster() as control_plane:
        yield str(control_plane.kubeconfig)


@pytest.fixture(scope="module")
def cluster(helm: str) -> Iterator[Cluster]:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: run hack/tools.sh")
    with _kubeconfig() as kubeconfig:
        cluster = Cluster(kubeconfig, kubectl, helm)
        version = cluster.kubectl("get", "--raw", "/readyz")
        assert version.returncode == 0, f"the API server does not answer: {version.stderr}"
        yield cluster


@pytest.fixture
def release(cluster: Cluster) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"bespoke-{suffix}", f"bespoke-system-{suffix}"
    cluster.namespace(namespace)
    yield name, namespace
    cluster.helm("uninstall", name, "--namespace", namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _install(cluster: Cluster, name: str, namespace: str, values: Manifest, tmp_path: Path) -> None:
    """`helm install` of the chart; helm reports the release deployed."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = cluster.helm(
        "install", name, str(CHART_DIR), "--namespace", namespace, "--values", str(values_file)
    )
    assert result.returncode == 0, result.stderr
    status = cluster.helm("status", name, "--namespace", namespace, "--output", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["info"]["status"] == "deployed"


def _can(cluster: Cluster, account: str, *args: str) -> bool:
    """Ask the API server's own RBAC evaluation whether the account may do something."""
    result = cluster.kubectl("auth", "can-i", *args, f"--as={account}")
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, result.stdout + result.stderr
    return answer == "yes"


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


def test_the_server_reports_a_stamped_version(cluster: Cluster) -> None:
    answer = cluster.kubectl("get", "--raw", "/version")
    assert answer.returncode == 0, answer.stderr
    version = json.loads(answer.stdout)["gitVersion"]
    assert version != UNSTAMPED_VERSION
    if not os.environ.get("BESPOKE_TEST_KUBECONFIG"):
        assert version == f"v{ENVTEST_KUBERNETES}"


def test_helm_install_with_defaults(
    cluster: Cluster, release: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = release
    _install(cluster, name, namespace, {}, tmp_path)
    deployment = cluster.kubectl(
        "get", "deployment", f"{name}-operator", "-n", namespace, "-o", "json"
    )
    assert deployment.returncode == 0, deployment.stderr
    assert json.loads(deployment.stdout)["spec"]["strategy"]["type"] == "RollingUpdate"
    account = f"system:serviceaccount:{namespace}:{name}"
    assert _can(cluster, account, "create", "jobs.batch", "--all-namespaces")
    assert _can(
        cluster,
        account,
        "patch",
        "modelcustomizations.bespoke.dev",
        "--subresource=status",
        "--all-namespaces",
    )
    assert _can(cluster, account, "watch", "namespaces")
    assert _can(cluster, account, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not _can(cluster, account, "get", "secrets", "--all-namespaces")
    # Leader election: the operator's own Lease in the release namespace, and no other.
    lease = f"leases.coordination.k8s.io/{name}-operator"
    assert _can(cluster, account, "update", lease, "-n", namespace)
    assert _can(cluster, account, "create", "leases.coordination.k8s.io", "-n", namespace)
    assert not _can(cluster, account, "update", "leases.coordination.k8s.io/other", "-n", namespace)
    assert not _can(cluster, account, "update", lease, "-n", "default")
    assert not _can(cluster, account, "create", "pods", "--all-namespaces")
    assert not _can(cluster, account, "delete", "customresourcedefinitions.apiextensions.k8s.io")
    # helm installed the chart's crds/ (or found them from an earlier release) and they serve.
    for crd in CRDS:
        established = cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"
        )
        assert established.returncode == 0, established.stderr


def test_helm_upgrade_adds_a_toggle_and_uninstall_keeps_the_crds(
    cluster: Cluster, release: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = release
    _install(cluster, name, namespace, {}, tmp_path)
    dashboard = {"grafanaDashboard": {"enabled": True}}
    values = tmp_path / "upgrade.yaml"
    values.write_text(yaml.safe_dump(dashboard))
    upgraded = cluster.helm(
        "upgrade", name, str(CHART_DIR), "--namespace", namespace, "--values", str(values)
    )
    assert upgraded.returncode == 0, upgraded.stderr
    configmaps = cluster.kubectl(
        "get", "configmap", "-n", namespace, "-l", "grafana_dashboard=1", "-o", "name"
    )
    assert configmaps.stdout.strip(), configmaps.stderr
    removed = cluster.helm("uninstall", name, "--namespace", namespace)
    assert removed.returncode == 0, removed.stderr
    gone = cluster.kubectl("get", "deployment", f"{name}-operator", "-n", namespace)
    assert "NotFound" in gone.stderr
    # Helm never deletes (or upgrades) CRDs: the customizations people made survive an uninstall.
    for crd in CRDS:
        assert cluster.kubectl("get", "crd", crd).returncode == 0


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
        account = f"system:serviceaccount:{namespace}:{name}"
        assert _can(cluster, account, "create", "jobs.batch", "-n", watched[0])
        assert _can(cluster, account, "create", "deployments.apps", "-n", watched[1])
        assert not _can(cluster, account, "create", "jobs.batch", "-n", namespace)
        assert not _can(cluster, account, "create", "jobs.batch", "-n", "default")
        assert not _can(cluster, account, "get", "secrets", "-n", watched[0])
        assert not _can(cluster, account, "create", "namespaces")
        assert _can(cluster, account, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    finally:
        for ns in watched:
            cluster.kubectl("delete", "namespace", ns, "--wait=false")


def _service_account(cluster: Cluster, namespace: str, name: str) -> None:
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(account))
    assert result.returncode == 0, result.stderr


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
        # Without kube-controller-manager nobody creates the default ServiceAccount.
        _service_account(cluster, namespace, "default")
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
            _service_account(cluster, namespace, spec.get("serviceAccountName", "default"))
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
