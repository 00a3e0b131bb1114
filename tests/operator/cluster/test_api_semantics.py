"""What the real API server does that the kmock emulator does not, proven on a small test CRD."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster.envtest_cluster import EnvtestCluster

pytestmark = pytest.mark.cluster

WIDGETS_CRD = Path(__file__).parent / "testdata" / "widgets-crd.yaml"
GROUP_PATH = "/apis/envtest.bespoke.dev/v1alpha1"


@pytest.fixture(scope="module")
def widgets(envtest_control_plane: EnvtestCluster) -> EnvtestCluster:
    assert envtest_control_plane.apply_crds([WIDGETS_CRD]) == ["widgets.envtest.bespoke.dev"]
    return envtest_control_plane


@pytest.fixture
def namespace(widgets: EnvtestCluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    widgets.create_namespace(name)
    return name


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "envtest.bespoke.dev/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"mode": "fast", "size": 3, **spec},
    }


def widgets_path(namespace: str, name: str = "") -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/widgets" + (f"/{name}" if name else "")


def test_schema_defaults_apply_and_unknown_fields_are_pruned(
    widgets: EnvtestCluster, namespace: str
) -> None:
    body = widget("w", surprise="dropped")
    created = widgets.request("POST", widgets_path(namespace), body)
    assert created.status == 201, created.message
    assert created.body["spec"] == {"mode": "fast", "size": 3, "minReplicas": 1, "maxReplicas": 3}
    assert created.body["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"size": 11}, "spec.size: Invalid value: 11: spec.size in body should be less than or"),
        ({"size": 0}, "spec.size in body should be greater than or equal to 1"),
        ({"mode": "reckless"}, 'spec.mode: Unsupported value: "reckless"'),
        (
            {"minReplicas": 5, "maxReplicas": 2},
            'spec.minReplicas: Invalid value: "object": minReplicas must not exceed maxReplicas',
        ),
        ({"learningRate": "fast"}, "spec.learningRate in body should match"),
    ],
)
def test_openapi_and_cel_validation_name_the_field(
    widgets: EnvtestCluster, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    answer = widgets.request("POST", widgets_path(namespace), widget("bad", **spec))
    assert answer.status == 422
    assert answer.body["reason"] == "Invalid"
    assert expected in answer.message


def test_transition_rule_makes_a_field_immutable(widgets: EnvtestCluster, namespace: str) -> None:
    assert widgets.request("POST", widgets_path(namespace), widget("w")).status == 201
    answer = widgets.request(
        "PATCH",
        widgets_path(namespace, "w"),
        {"spec": {"mode": "careful"}},
        content_type="application/merge-patch+json",
    )
    assert answer.status == 422
    assert 'spec.mode: Invalid value: "string": mode is immutable' in answer.message


def test_duplicate_create_is_409_already_exists(widgets: EnvtestCluster, namespace: str) -> None:
    assert widgets.request("POST", widgets_path(namespace), widget("w")).status == 201
    again = widgets.request("POST", widgets_path(namespace), widget("w"))
    assert again.status == 409
    assert again.body["reason"] == "AlreadyExists"


def test_stale_resource_version_is_409_conflict(widgets: EnvtestCluster, namespace: str) -> None:
    created = widgets.request("POST", widgets_path(namespace), widget("w")).body
    first = {**created, "spec": {**created["spec"], "size": 4}}
    assert widgets.request("PUT", widgets_path(namespace, "w"), first).status == 200
    # The same, now stale, resourceVersion again: optimistic concurrency must refuse it.
    second = {**created, "spec": {**created["spec"], "size": 5}}
    answer = widgets.request("PUT", widgets_path(namespace, "w"), second)
    assert answer.status == 409
    assert answer.body["reason"] == "Conflict"
    current = widgets.request("GET", widgets_path(namespace, "w")).body
    assert current["spec"]["size"] == 4


def test_generation_counts_spec_changes_only(widgets: EnvtestCluster, namespace: str) -> None:
    path = widgets_path(namespace, "w")
    assert widgets.request("POST", widgets_path(namespace), widget("w")).status == 201
    merge = "application/merge-patch+json"

    spec_change = widgets.request("PATCH", path, {"spec": {"size": 7}}, content_type=merge)
    assert spec_change.body["metadata"]["generation"] == 2

    label_change = widgets.request(
        "PATCH", path, {"metadata": {"labels": {"a": "b"}}}, content_type=merge
    )
    assert label_change.body["metadata"]["generation"] == 2

    status = widgets.request(
        "PATCH",
        f"{path}/status",
        {"status": {"observedGeneration": 2, "phase": "Ready"}},
        content_type=merge,
    )
    assert status.status == 200, status.message
    assert status.body["metadata"]["generation"] == 2
    assert status.body["status"] == {"observedGeneration": 2, "phase": "Ready"}


def test_status_and_spec_are_split_between_endpoints(
    widgets: EnvtestCluster, namespace: str
) -> None:
    path = widgets_path(namespace, "w")
    assert widgets.request("POST", widgets_path(namespace), widget("w")).status == 201
    merge = "application/merge-patch+json"
    # Through the main resource the status is ignored; through /status the spec is.
    main = widgets.request(
        "PATCH", path, {"spec": {"size": 2}, "status": {"phase": "Sneaky"}}, content_type=merge
    )
    assert main.body["spec"]["size"] == 2
    assert "status" not in main.body
    sub = widgets.request(
        "PATCH",
        f"{path}/status",
        {"spec": {"size": 9}, "status": {"phase": "Ready"}},
        content_type=merge,
    )
    assert sub.body["spec"]["size"] == 2
    assert sub.body["status"] == {"phase": "Ready"}
