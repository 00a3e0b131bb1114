"""Rendered manifests against the Kubernetes schemas and pod templates against PSS restricted."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.chart.chartlib import ALL_TOGGLES, CHART_DIR, NAMESPACED, Manifest, Render
from tests.chart.podsecurity import check_restricted, pod_spec_of

# The newest Kubernetes release whose schemas the installed kubernetes-validate ships, and the
# oldest the chart supports (Chart.yaml kubeVersion).
KUBERNETES_VERSION = kubernetes_validate.latest_version()
OLDEST_SUPPORTED = (
    yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"]
    .removeprefix(">=")
    .removesuffix("-0")
)
# prometheus-operator kinds are not in the Kubernetes schemas; the API server validates them
# against their CRDs in the cluster install test.
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob", "Pod"}

VALUE_SETS = {
    "defaults": {},
    "all-toggles": ALL_TOGGLES,
    "namespaced": NAMESPACED,
    "namespaced-all-toggles": {**ALL_TOGGLES, **NAMESPACED},
}


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, KUBERNETES_VERSION])
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_validates_strictly(render: Render, name: str, version: str) -> None:
    checked = 0
    for manifest in render(VALUE_SETS[name]):
        if manifest["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(manifest, version, strict=True)
        checked += 1
    assert checked >= 8


def test_validation_catches_a_broken_manifest(render: Render) -> None:
    deployment = next(m for m in render() if m["kind"] == "Deployment")
    broken: Manifest = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_pod_template_is_restricted(render: Render, name: str) -> None:
    workloads = [m for m in render(VALUE_SETS[name]) if m["kind"] in WORKLOAD_KINDS]
    assert workloads
    for workload in workloads:
        metadata, spec = pod_spec_of(workload)
        assert check_restricted(spec, metadata) == [], workload["metadata"]["name"]


def test_operator_root_filesystem_is_read_only(render: Render) -> None:
    deployment = next(m for m in render() if m["kind"] == "Deployment")
    _, spec = pod_spec_of(deployment)
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in spec["containers"])
