"""The operator under kopf's KopfRunner against the real API server and controller-manager.

No kubelet runs here: the test plays the node by writing the trainer Pod's terminated state (with
the trainer summary as its termination message) through the Pod's status subresource; the
controller-manager's Job controller then completes the Job, as on a cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes_asyncio.config import kube_config

from tests.cluster.envtest_cluster import REPO_ROOT, ApiResponse, EnvtestCluster, wait_for

pytestmark = pytest.mark.cluster

EXAMPLE = REPO_ROOT / "examples" / "text-classification-lora.yaml"
MC_PATH = "/apis/bespoke.dev/v1alpha1/namespaces/{ns}/modelcustomizations"
MV_PATH = "/apis/bespoke.dev/v1alpha1/namespaces/{ns}/modelversions"


@pytest.fixture
def namespace(envtest_controller_manager: EnvtestCluster) -> str:
    name = f"op-{uuid.uuid4().hex[:8]}"
    envtest_controller_manager.create_namespace(name)
    return name


@pytest.fixture
def operator(
    envtest: EnvtestCluster,
    envtest_controller_manager: EnvtestCluster,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[KopfRunner]:
    kubeconfig = str(envtest_controller_manager.kubeconfig)
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    # kubernetes_asyncio reads KUBECONFIG once, at import time; kopf's login goes through it.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
    monkeypatch.setenv("BESPOKE_METRICS_PORT", "0")
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "bespoke_operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output


def get(cluster: EnvtestCluster, path: str) -> ApiResponse:
    return wait_for(lambda: cluster.request("GET", path), lambda answer: answer.status == 200)


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences", []) if ref["controller"]}


def trainer_summary() -> str:
    return json.dumps(
        {
            "outcome": "Succeeded",
            "version": 1,
            "metrics": {"accuracy": 0.91, "macroF1": 0.9, "calibrationError": 0.05},
            "championMetrics": None,
            "fairness": None,
            "artifactUri": "pvc://bespoke-artifacts/sentiment/versions/v1",
            "dataFingerprint": "sha256:" + "0" * 64,
            "reason": None,
            "message": "trained",
            "exitCode": 0,
        }
    )


def finish_trainer_pod(cluster: EnvtestCluster, namespace: str, job: str) -> None:
    """Do what the kubelet would: the trainer container ran and exited 0 with its summary."""
    pods = wait_for(
        lambda: cluster.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            params={"labelSelector": f"batch.kubernetes.io/job-name={job}"},
        ),
        lambda answer: bool(answer.body.get("items")),
    )
    pod = pods.body["items"][0]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    statuses = [
        {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "message": trainer_summary(),
                    "startedAt": now,
                    "finishedAt": now,
                }
            },
        }
        for container in pod["spec"]["containers"]
    ]
    answer = cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status",
        {"status": {"phase": "Succeeded", "containerStatuses": statuses}},
        content_type="application/strategic-merge-patch+json",
    )
    assert answer.status == 200, answer.message


def test_customization_trains_gates_serves_and_garbage_collects(
    envtest_controller_manager: EnvtestCluster, namespace: str, operator: KopfRunner
) -> None:
    cluster = envtest_controller_manager
    body = yaml.safe_load(EXAMPLE.read_text())
    created = cluster.request("POST", MC_PATH.format(ns=namespace), body)
    assert created.status == 201, created.message
    name = created.body["metadata"]["name"]
    mc_uid = created.body["metadata"]["uid"]

    # The version record, the trainer config and the trainer Job, each owned by the chain.
    version = get(cluster, f"{MV_PATH.format(ns=namespace)}/{name}-v1").body
    assert owner_uids(version) == {mc_uid}
    config = get(cluster, f"/api/v1/namespaces/{namespace}/configmaps/{name}-v1-trainer").body
    job = get(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}-v1-train-1").body
    assert owner_uids(config) & {mc_uid, version["metadata"]["uid"]}
    assert owner_uids(job) & {mc_uid, version["metadata"]["uid"]}
    assert json.loads(next(iter(config["data"].values())))

    mc_path = f"{MC_PATH.format(ns=namespace)}/{name}"
    observed = wait_for(
        lambda: cluster.request("GET", mc_path),
        lambda answer: answer.body.get("status", {}).get("observedGeneration") == 1,
    )
    assert observed.body["metadata"]["generation"] == 1
    assert observed.body["status"]["observedGeneration"] == 1

    # The trainer finishes; its gates pass; the version goes to serving.
    finish_trainer_pod(cluster, namespace, job["metadata"]["name"])
    decided = wait_for(
        lambda: cluster.request("GET", f"{MV_PATH.format(ns=namespace)}/{name}-v1"),
        lambda answer: bool(answer.body.get("status", {}).get("gates")),
    )
    gates = decided.body["status"]["gates"]
    assert gates
    assert all(gate["passed"] for gate in gates), gates
    deployment = get(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-serving")
    service = get(cluster, f"/api/v1/namespaces/{namespace}/services/{name}-serving")
    assert owner_uids(deployment.body) == {mc_uid}
    assert owner_uids(service.body) == {mc_uid}

    # Deleting the customization: the operator lets go, the garbage collector removes the rest.
    assert cluster.request("DELETE", mc_path).status == 200
    children = [
        mc_path,
        f"{MV_PATH.format(ns=namespace)}/{name}-v1",
        f"/api/v1/namespaces/{namespace}/configmaps/{name}-v1-trainer",
        f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}-v1-train-1",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-serving",
        f"/api/v1/namespaces/{namespace}/services/{name}-serving",
    ]
    left = wait_for(
        lambda: [path for path in children if cluster.request("GET", path).status != 404],
        lambda remaining: not remaining,
    )
    assert left == []
