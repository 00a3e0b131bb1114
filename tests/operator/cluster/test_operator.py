"""The operator's real handlers (kopf.testing.KopfRunner) against the real kube-apiserver.

No kubelet runs here: the test plays it by writing Pod status (a trainer container that
terminated with its summary, a serving container that became Ready) through the status
subresource, and kube-controller-manager's Job, ReplicaSet, Deployment and garbage-collector
controllers do the rest as on a cluster.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from tests.operator.cluster.envtest_cluster import EnvtestCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# The operator reads its settings when it starts (KopfRunner, below): a short interval lets
# rollout deadlines expire within the test.
os.environ.setdefault("BESPOKE_RECONCILE_INTERVAL_SECONDS", "3")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "text-classification-lora.yaml"
GROUP_PATH = "/apis/bespoke.dev/v1alpha1"


@pytest.fixture
def namespace(envtest_controller_manager: EnvtestCluster) -> str:
    name = f"op-{uuid.uuid4().hex[:8]}"
    envtest_controller_manager.create_namespace(name)
    return name


@pytest.fixture
def operator_env(
    envtest: EnvtestCluster,
    envtest_controller_manager: EnvtestCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> EnvtestCluster:
    """The control plane with the CRDs installed and the controller-manager running."""
    monkeypatch.setenv("KUBECONFIG", str(envtest_controller_manager.kubeconfig))
    monkeypatch.setenv("BESPOKE_METRICS_PORT", "0")
    return envtest_controller_manager


def _runner(namespace: str) -> KopfRunner:
    args = ["run", "--standalone", "--namespace", namespace, "-m", "bespoke_operator.handlers"]
    return KopfRunner(args, timeout=60)


class Cluster:
    """Small helpers over the raw API for the assertions below."""

    def __init__(self, envtest: EnvtestCluster, namespace: str) -> None:
        self.envtest = envtest
        self.ns = namespace

    def get(self, path: str) -> dict[str, Any] | None:
        answer = self.envtest.request("GET", path)
        return answer.body if answer.status == 200 else None

    def items(self, path: str, selector: str) -> list[dict[str, Any]]:
        answer = self.envtest.request("GET", path, params={"labelSelector": selector})
        assert answer.status == 200, answer.message
        items: list[dict[str, Any]] = answer.body["items"]
        return items

    def mc(self, name: str = "sentiment") -> dict[str, Any] | None:
        return self.get(f"{GROUP_PATH}/namespaces/{self.ns}/modelcustomizations/{name}")

    def mv(self, number: int) -> dict[str, Any] | None:
        return self.get(f"{GROUP_PATH}/namespaces/{self.ns}/modelversions/sentiment-v{number}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.items(
            f"/apis/batch/v1/namespaces/{self.ns}/jobs", "bespoke.dev/customization=sentiment"
        )

    def deployment(self) -> dict[str, Any] | None:
        return self.get(f"/apis/apps/v1/namespaces/{self.ns}/deployments/sentiment-serving")

    def pods(self, selector: str) -> list[dict[str, Any]]:
        return self.items(f"/api/v1/namespaces/{self.ns}/pods", selector)

    def create_example(self, **serving: Any) -> None:
        """Creates the example customization here, with these `spec.serving` fields changed."""
        document = yaml.safe_load(EXAMPLE.read_text())
        document["metadata"]["namespace"] = self.ns
        document["spec"]["serving"].update(serving)
        answer = self.envtest.request(
            "POST", f"{GROUP_PATH}/namespaces/{self.ns}/modelcustomizations", document
        )
        assert answer.status == 201, answer.message

    def patch_spec(self, spec: dict[str, Any]) -> None:
        """Merge-patches the example customization's spec (a new generation)."""
        self._merge_patch(
            f"{GROUP_PATH}/namespaces/{self.ns}/modelcustomizations/sentiment", {"spec": spec}
        )

    def patch_status(self, path: str, status: dict[str, Any]) -> None:
        self._merge_patch(f"{path}/status", {"status": status})

    def _merge_patch(self, path: str, patch: dict[str, Any]) -> None:
        answer = self.envtest.request(
            "PATCH", path, patch, content_type="application/merge-patch+json"
        )
        assert answer.status == 200, answer.message

    def finish_trainer(self, job: str, summary: dict[str, Any]) -> None:
        """Plays the kubelet: the trainer pod of `job` terminated with this summary."""
        pods = wait_for(lambda: self.pods(f"batch.kubernetes.io/job-name={job}"), bool)
        assert pods, f"the Job controller made no pod for {job}"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = pods[0]["metadata"]["name"]
        self.patch_status(
            f"/api/v1/namespaces/{self.ns}/pods/{name}",
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "ready": False,
                        "restartCount": 0,
                        "image": pods[0]["spec"]["containers"][0]["image"],
                        "imageID": "",
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "message": json.dumps(summary),
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        },
                    }
                ],
            },
        )

    def serving_pods_ready(self, version: int) -> None:
        """Plays the kubelet: every serving pod of `version` runs and passes its probes."""
        selector = f"app.kubernetes.io/component=serving,bespoke.dev/version={version}"
        pods = wait_for(lambda: self.pods(selector), bool)
        assert pods, "the Deployment made no serving pod"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for pod in pods:
            self.patch_status(
                f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}",
                {
                    "phase": "Running",
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    ],
                    "containerStatuses": [
                        {
                            "name": "serving",
                            "ready": True,
                            "started": True,
                            "restartCount": 0,
                            "image": pod["spec"]["containers"][0]["image"],
                            "imageID": "",
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                },
            )


@pytest.fixture
def cluster(operator_env: EnvtestCluster, namespace: str) -> Cluster:
    return Cluster(operator_env, namespace)


def _summary(version: int, accuracy: float) -> dict[str, Any]:
    return {
        "outcome": "Succeeded",
        "version": version,
        "metrics": {"accuracy": accuracy, "macroF1": accuracy - 0.01, "evalLoss": 0.3},
        "artifactUri": f"pvc://bespoke-artifacts/sentiment/versions/v{version}",
        "dataFingerprint": "sha256:" + "0" * 64,
        "exitCode": 0,
    }


def _condition(body: dict[str, Any] | None, type_: str) -> str | None:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == type_), None)


def test_lifecycle_train_gate_deploy_restart_rollback_and_delete(cluster: Cluster) -> None:
    cluster.create_example(rolloutDeadlineSeconds=30)

    with _runner(cluster.ns) as runner:
        # A version, its config and its trainer Job, owned so deletion cascades.
        version = wait_for(lambda: cluster.mv(1), lambda v: v is not None)
        assert version is not None
        jobs = wait_for(cluster.jobs, bool)
        assert [j["metadata"]["name"] for j in jobs] == ["sentiment-v1-train-1"]
        configmap = cluster.get(f"/api/v1/namespaces/{cluster.ns}/configmaps/sentiment-v1-trainer")
        assert configmap is not None
        for child in (version, jobs[0], configmap):
            assert child["metadata"]["ownerReferences"][0]["kind"] == "ModelCustomization"
        assert json.loads(configmap["data"]["config.json"])["version"] == 1
        mc = wait_for(cluster.mc, lambda b: _condition(b, "Reconciling") == "True")
        assert mc is not None
        assert mc["status"]["observedGeneration"] == mc["metadata"]["generation"]
    assert runner.exception is None

    # Restarted mid-training, the operator finds its Job and creates no duplicate.
    with _runner(cluster.ns) as runner:
        cluster.finish_trainer("sentiment-v1-train-1", _summary(1, 0.93))
        promoted = wait_for(
            lambda: cluster.mv(1), lambda v: (v or {}).get("status", {}).get("phase") == "Promoted"
        )
        assert promoted is not None
        assert [j["metadata"]["name"] for j in cluster.jobs()] == ["sentiment-v1-train-1"]
        gates = {g["name"]: g["passed"] for g in promoted["status"]["gates"]}
        assert gates == {"accuracy>=": True, "macroF1>=": True, "championDelta": True}
        deployment = wait_for(cluster.deployment, lambda d: d is not None)
        assert deployment is not None
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["bespoke.dev/version"] == "1"
        service = cluster.get(f"/api/v1/namespaces/{cluster.ns}/services/sentiment-serving")
        assert service is not None

        cluster.serving_pods_ready(1)
        ready = wait_for(cluster.mc, lambda b: _condition(b, "Ready") == "True", timeout_s=90)
        assert _condition(ready, "Ready") == "True", ready
        assert ready is not None
        assert ready["status"]["productionVersion"] == 1

        # A new spec trains v2; it passes the gates but its pods never become ready: rollback.
        cluster.patch_spec({"training": {"epochs": 5}})
        wait_for(lambda: [j for j in cluster.jobs() if "-v2-" in j["metadata"]["name"]], bool)
        cluster.finish_trainer("sentiment-v2-train-1", _summary(2, 0.95))
        rolled_back = wait_for(
            lambda: cluster.mv(2),
            lambda v: (v or {}).get("status", {}).get("reason") == "RolloutFailed",
            timeout_s=120,
        )
        assert rolled_back is not None
        assert rolled_back["status"]["phase"] == "Failed"
        deployment = wait_for(
            cluster.deployment,
            lambda d: (
                d is not None
                and d["spec"]["template"]["metadata"]["labels"]["bespoke.dev/version"] == "1"
            ),
        )
        assert deployment is not None
        events = cluster.items(f"/api/v1/namespaces/{cluster.ns}/events", "")
        reasons = {e["reason"] for e in events}
        assert {"Promoted", "RolledBack"} <= reasons

        # Deleting the customization garbage-collects every child through owner references (the
        # operator is running: kopf's finalizer is released by it).
        answer = cluster.envtest.request(
            "DELETE", f"{GROUP_PATH}/namespaces/{cluster.ns}/modelcustomizations/sentiment"
        )
        assert answer.status == 200, answer.message
        gone = wait_for(
            lambda: (cluster.mv(1), cluster.jobs(), cluster.deployment()),
            lambda state: state == (None, [], None),
            timeout_s=90,
        )
        assert gone == (None, [], None)
    assert runner.exception is None


def test_a_superseded_version_takes_its_trainer_and_config_with_it(cluster: Cluster) -> None:
    cluster.create_example()
    configmaps = f"/api/v1/namespaces/{cluster.ns}/configmaps"

    with _runner(cluster.ns) as runner:
        wait_for(cluster.jobs, bool)
        # The spec changes while v1 still trains: v2 replaces it, and v1's trainer Job and
        # config go (they are owned by the customization, so nothing else would remove them).
        cluster.patch_spec({"training": {"epochs": 5}})
        state = wait_for(
            lambda: (
                sorted(j["metadata"]["name"] for j in cluster.jobs()),
                sorted(c["metadata"]["name"] for c in cluster.items(configmaps, "")),
            ),
            lambda s: s[0] == ["sentiment-v2-train-1"] and "sentiment-v1-trainer" not in s[1],
        )
        assert state[0] == ["sentiment-v2-train-1"]
        assert "sentiment-v1-trainer" not in state[1]
        assert "sentiment-v2-trainer" in state[1]
        superseded = cluster.mv(1)
        assert superseded is not None
        assert (superseded["status"]["phase"], superseded["status"]["reason"]) == (
            "Failed",
            "Superseded",
        )
    assert runner.exception is None


def _reason(body: dict[str, Any] | None, type_: str) -> str | None:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c["reason"] for c in conditions if c["type"] == type_), None)


def _message(body: dict[str, Any] | None, type_: str) -> str:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c.get("message", "") for c in conditions if c["type"] == type_), "")


def test_production_survives_outage_deletion_and_a_bad_image(cluster: Cluster) -> None:
    """The four outage cases on the real API server: production is never stranded."""
    cluster.create_example(rolloutDeadlineSeconds=30)
    serving_pods = "app.kubernetes.io/component=serving"

    with _runner(cluster.ns) as runner:
        wait_for(cluster.jobs, bool)
        cluster.finish_trainer("sentiment-v1-train-1", _summary(1, 0.93))
        wait_for(cluster.deployment, lambda d: d is not None)
        cluster.serving_pods_ready(1)
        ready = wait_for(cluster.mc, lambda b: _condition(b, "Ready") == "True", timeout_s=90)
        assert _condition(ready, "Ready") == "True", ready

        # Outage: the serving pod stops being ready (a node drain). Degraded, never Failed, and
        # past the rollout deadline the version is still Promoted.
        pod = cluster.pods(serving_pods)[0]
        cluster.patch_status(
            f"/api/v1/namespaces/{cluster.ns}/pods/{pod['metadata']['name']}",
            {"conditions": [{"type": "Ready", "status": "False"}]},
        )
        degraded = wait_for(cluster.mc, lambda b: _condition(b, "Degraded") == "True")
        assert _reason(degraded, "Degraded") == "ServingUnavailable", degraded
        assert _condition(degraded, "Stalled") == "False"
        # The Deployment is deleted during the outage: recreated.
        uid = (cluster.deployment() or {})["metadata"]["uid"]
        answer = cluster.envtest.request(
            "DELETE", f"/apis/apps/v1/namespaces/{cluster.ns}/deployments/sentiment-serving"
        )
        assert answer.status == 200, answer.message
        recreated = wait_for(
            cluster.deployment, lambda d: d is not None and d["metadata"]["uid"] != uid
        )
        assert recreated is not None
        assert recreated["spec"]["template"]["metadata"]["labels"]["bespoke.dev/version"] == "1"
        # A replicas change during the outage is applied, not rolled back.
        cluster.patch_spec({"serving": {"replicas": 2}})
        scaled = wait_for(cluster.deployment, lambda d: (d or {})["spec"]["replicas"] == 2)
        assert scaled is not None
        wait_for(
            lambda: cluster.pods(f"{serving_pods},bespoke.dev/version=1"), lambda p: len(p) >= 2
        )
        overdue = wait_for(
            cluster.mc,
            lambda b: "not available within 30s" in _message(b, "Degraded"),
            timeout_s=90,
        )
        assert "not available within 30s" in _message(overdue, "Degraded"), overdue
        assert _condition(overdue, "Stalled") == "False"
        assert (cluster.deployment() or {})["spec"]["replicas"] == 2
        still = cluster.mv(1)
        assert still is not None
        assert still["status"]["phase"] == "Promoted"
        # Recovery: pods ready again.
        cluster.serving_pods_ready(1)
        ready = wait_for(
            cluster.mc,
            lambda b: _condition(b, "Ready") == "True" and _condition(b, "Degraded") == "False",
            timeout_s=90,
        )
        assert _condition(ready, "Ready") == "True", ready
        assert (ready or {})["status"]["lastAvailable"]["serving"]["replicas"] == 2

        # A bad image while healthy: rolled back to the last available shape, Stalled until the
        # spec changes; reverting the image makes it Ready again.
        cluster.patch_spec({"serving": {"image": "registry.example/serving:typo"}})
        stalled = wait_for(cluster.mc, lambda b: _condition(b, "Stalled") == "True", timeout_s=120)
        assert _reason(stalled, "Stalled") == "RolloutFailed", stalled
        assert _condition(stalled, "Reconciling") == "False"
        assert (stalled or {})["status"]["failedServingHash"]
        image = wait_for(
            cluster.deployment,
            lambda d: "typo" not in (d or {})["spec"]["template"]["spec"]["containers"][0]["image"],
        )
        assert "typo" not in (image or {})["spec"]["template"]["spec"]["containers"][0]["image"]
        assert (cluster.mv(1) or {})["status"]["phase"] == "Promoted"
        cluster.patch_spec({"serving": {"image": None}})
        cluster.serving_pods_ready(1)
        ready = wait_for(cluster.mc, lambda b: _condition(b, "Ready") == "True", timeout_s=90)
        assert _condition(ready, "Ready") == "True", ready
        assert not (ready or {})["status"].get("failedServingHash")
        events = {e["reason"] for e in cluster.items(f"/api/v1/namespaces/{cluster.ns}/events", "")}
        assert {"Degraded", "Recovered", "RolledBack"} <= events
        assert "TrainingFailed" not in events
    assert runner.exception is None


def test_a_trainer_that_cannot_pull_its_image_fails_with_that_reason(cluster: Cluster) -> None:
    """Set by the test as the kubelet would: the trainer pod waits in ImagePullBackOff."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["namespace"] = cluster.ns
    document["spec"]["training"]["image"] = "registry.example/trainer:typo"
    document["spec"]["training"]["startupDeadlineSeconds"] = 30
    answer = cluster.envtest.request(
        "POST", f"{GROUP_PATH}/namespaces/{cluster.ns}/modelcustomizations", document
    )
    assert answer.status == 201, answer.message

    with _runner(cluster.ns) as runner:
        job = "sentiment-v1-train-1"
        pods = wait_for(lambda: cluster.pods(f"batch.kubernetes.io/job-name={job}"), bool)
        assert pods, "the Job controller made no pod"
        cluster.patch_status(
            f"/api/v1/namespaces/{cluster.ns}/pods/{pods[0]['metadata']['name']}",
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "ready": False,
                        "restartCount": 0,
                        "image": "registry.example/trainer:typo",
                        "imageID": "",
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "registry.example/trainer:typo"',
                            }
                        },
                    }
                ],
            },
        )
        failed = wait_for(
            lambda: cluster.mv(1),
            lambda v: (v or {}).get("status", {}).get("phase") == "Failed",
            timeout_s=120,
        )
        assert failed is not None
        assert failed["status"]["reason"] == "ImagePullBackOff", failed["status"]
        assert "registry.example/trainer:typo" in failed["status"]["message"]
        mc = wait_for(cluster.mc, lambda b: _condition(b, "Stalled") == "True")
        assert _reason(mc, "Stalled") == "ImagePullBackOff"
        assert _condition(mc, "Reconciling") == "False"
        events = cluster.items(f"/api/v1/namespaces/{cluster.ns}/events", "")
        assert any(
            e["reason"] == "TrainingFailed" and "ImagePullBackOff" in e["message"] for e in events
        )
        assert wait_for(cluster.jobs, lambda jobs: jobs == []) == []  # the stuck Job is removed
    assert runner.exception is None
