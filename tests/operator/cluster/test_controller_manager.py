"""With kube-controller-manager: Jobs get Pods and owner references garbage-collect."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.operator.cluster.envtest_cluster import ApiResponse, EnvtestCluster, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(envtest_controller_manager: EnvtestCluster) -> str:
    name = f"kcm-{uuid.uuid4().hex[:8]}"
    envtest_controller_manager.create_namespace(name)
    return name


def configmap(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def test_deleting_the_owner_garbage_collects_the_child(
    envtest_controller_manager: EnvtestCluster, namespace: str
) -> None:
    cluster = envtest_controller_manager
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    parent = cluster.request("POST", base, configmap("parent")).body
    assert cluster.request("POST", base, configmap("child", owner=parent)).status == 201

    assert cluster.request("DELETE", f"{base}/parent").status == 200
    child: ApiResponse = wait_for(
        lambda: cluster.request("GET", f"{base}/child"), lambda answer: answer.status == 404
    )
    assert child.status == 404


def test_a_job_gets_a_pod_owned_by_it(
    envtest_controller_manager: EnvtestCluster, namespace: str
) -> None:
    cluster = envtest_controller_manager
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "trainer", "image": "example.invalid/trainer:1"}],
                }
            },
        },
    }
    created = cluster.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
    assert created.status == 201, created.message
    pods = wait_for(
        lambda: cluster.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            params={"labelSelector": "job-name=train"},
        ),
        lambda answer: bool(answer.body.get("items")),
    )
    assert len(pods.body["items"]) == 1
    owner = pods.body["items"][0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Job",
        "train",
        created.body["metadata"]["uid"],
    )
