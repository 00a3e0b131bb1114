"""The Kubernetes runtime's child objects and its reading of Job, Pod and Deployment status."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from bespoke_operator.api import ModelCustomization
from bespoke_operator.constants import TRAINING_HASH_ANNOTATION
from bespoke_operator.reconcile import CreateVersion, Observed, StopTrainer, decide
from bespoke_operator.reconcile.serving import serving_shape
from bespoke_operator.reconcile.trainer_config import trainer_shape
from bespoke_operator.runtimes.kubernetes import objects
from bespoke_operator.runtimes.kubernetes.read import parse_versions, serving_state, trainer_runs

from ..api.fixtures import example_files
from ..reconcile.world import START, InMemoryWorld, customization

OWNER = objects.OwnerRef("bespoke.dev/v1alpha1", "ModelCustomization", "x", "uid-1")
IMAGES = objects.Images(trainer="ghcr.io/bespoke-dev/bespoke-trainer:0.1.0", serving="s:0.1.0")


def _children(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text())
    document["metadata"]["namespace"] = "ml"
    mc = ModelCustomization.model_validate(document)
    world = InMemoryWorld(document)
    created = [a for a in decide(mc, world.observed()).actions if isinstance(a, CreateVersion)]
    version = created[0].version.spec
    name = mc.metadata.name
    return [
        objects.trainer_configmap(version, {"version": 1}, "ml", OWNER),
        objects.trainer_job(version, trainer_shape(version), 1, "ml", OWNER, IMAGES),
        objects.serving_deployment(
            serving_shape(mc, version=1, artifact_uri=version.artifact_uri), OWNER, IMAGES
        ),
        objects.serving_service(name, "ml", OWNER),
        objects.serving_pdb(name, "ml", OWNER),
    ]


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_children_are_valid_kubernetes_objects_with_owner_and_short_names(path: Path) -> None:
    for child in _children(path):
        kubernetes_validate.validate(child, "1.34", strict=True)
        assert child["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert len(child["metadata"]["name"]) <= 63


def _pod_specs(path: Path) -> list[dict[str, Any]]:
    return [
        c["spec"]["template"]["spec"] for c in _children(path) if c["kind"] in ("Job", "Deployment")
    ]


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_pod_templates_meet_the_restricted_pod_security_profile(path: Path) -> None:
    for pod in _pod_specs(path):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["readOnlyRootFilesystem"] is True
        for volume in pod["volumes"]:
            assert "hostPath" not in volume


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_scratch_volume_is_bounded_and_requested(path: Path) -> None:
    for pod in _pod_specs(path):
        scratch = [v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v]
        assert scratch
        for volume in scratch:
            assert volume["sizeLimit"]
        for container in pod["containers"]:
            assert container["resources"]["requests"]["ephemeral-storage"] in {
                v["sizeLimit"] for v in scratch
            }


def test_scratch_space_follows_the_spec() -> None:
    world = InMemoryWorld(customization())
    world.document["spec"]["training"]["resources"] = {"ephemeralStorage": "120Gi"}
    world.document["spec"]["serving"]["resources"] = {"ephemeralStorage": "3Gi"}
    mc = world.mc
    assert mc.spec.training.resources.ephemeral_storage == "120Gi"
    [create] = [a for a in world.reconcile().actions if isinstance(a, CreateVersion)]
    owner = objects.OwnerRef("bespoke.dev/v1alpha1", "ModelCustomization", "sentiment", "u")
    images = objects.Images("t", "s")
    job = objects.trainer_job(
        create.version.spec, trainer_shape(create.version.spec), 1, "ml", owner, images
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "120Gi"}
    serving = objects.serving_deployment(
        serving_shape(mc, version=1, artifact_uri="pvc://a/v1"), owner, images
    )
    pod = serving["spec"]["template"]["spec"]
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "3Gi"}
    assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "3Gi"


def test_gpu_job_carries_scheduling_queue_and_failure_policy() -> None:
    path = next(p for p in example_files() if p.name == "qlora-gpu.yaml")
    job = next(c for c in _children(path) if c["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team-a"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "ml-training"
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] == 43200
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert rules[1]["onExitCodes"]["values"] == [2, 3, 5, 7]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/mnt/pvc/legal-data", "/mnt/pvc/legal-artifacts", "/etc/bespoke"} <= mounts
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize("kind", ["ConfigMap", "Job"])
def test_a_trainer_object_is_current_only_for_its_own_spec_owner_and_life(kind: str) -> None:
    wanted = next(c for c in _children(example_files()[0]) if c["kind"] == kind)
    hash_ = wanted["metadata"]["annotations"][TRAINING_HASH_ANNOTATION]
    assert len(hash_) == 64

    def found(**metadata: Any) -> dict[str, Any]:
        return {**wanted, "metadata": {**wanted["metadata"], **metadata}}

    assert objects.trainer_object_is_current(found(), wanted)
    # Written by an operator from before the hash was recorded: kept, not restarted.
    assert objects.trainer_object_is_current(found(annotations={}), wanted)
    other_spec = {TRAINING_HASH_ANNOTATION: "0" * 64}
    assert not objects.trainer_object_is_current(found(annotations=other_spec), wanted)
    earlier_namesake = [{**OWNER.as_dict(), "uid": "uid-0"}]
    assert not objects.trainer_object_is_current(found(ownerReferences=earlier_namesake), wanted)
    leaving = "2026-11-28T07:00:00Z"
    assert not objects.trainer_object_is_current(found(deletionTimestamp=leaving), wanted)


def test_serving_deployment_rolls_without_unavailability_and_probes_readiness() -> None:
    path = next(p for p in example_files() if p.name == "text-classification-lora.yaml")
    deployment = next(c for c in _children(path) if c["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = spec["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BESPOKE_VERSION"] == "1"
    assert env["BESPOKE_MODEL_URI"] == "pvc://bespoke-artifacts/sentiment/versions/v1"
    assert env["BESPOKE_MAX_TEXTS_PER_REQUEST"] == "32"
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"


def _job(state: str | None, **labels: str) -> dict[str, Any]:
    conditions = (
        [{"type": state, "status": "True", "reason": "BackoffLimitExceeded"}] if state else []
    )
    return {
        "metadata": {
            "name": "x-v1-train-1",
            "labels": {"bespoke.dev/version": "1", "bespoke.dev/attempt": "1", **labels},
        },
        "status": {"conditions": conditions},
    }


def _pod(message: str, exit_code: int, *, disrupted: bool = False) -> dict[str, Any]:
    conditions = [{"type": "DisruptionTarget", "status": "True"}] if disrupted else []
    return {
        "metadata": {
            "labels": {"batch.kubernetes.io/job-name": "x-v1-train-1"},
            "creationTimestamp": START.isoformat(),
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {"terminated": {"exitCode": exit_code, "message": message}},
                }
            ],
        },
    }


def test_completed_job_yields_the_summary_from_the_termination_message() -> None:
    summary = {"outcome": "Succeeded", "metrics": {"accuracy": 0.9}, "exitCode": 0}
    [run] = trainer_runs([_job("Complete")], [_pod(json.dumps(summary), 0)])
    assert run.state == "Succeeded"
    assert run.summary is not None
    assert run.summary.metrics == {"accuracy": 0.9}


def test_failed_job_without_summary_keeps_the_log_tail_and_exit_code() -> None:
    [run] = trainer_runs([_job("Failed")], [_pod("Traceback ... CUDA error", 1)])
    assert run.state == "Failed"
    assert run.summary is not None
    assert run.summary.reason == "TrainerCrashed"
    assert run.summary.exit_code == 1
    assert "CUDA error" in (run.summary.message or "")


def test_disrupted_pod_and_running_job_are_told_apart() -> None:
    [disrupted] = trainer_runs([_job("Failed")], [_pod("", 143, disrupted=True)])
    assert disrupted.disrupted is True
    [running] = trainer_runs([_job(None)], [])
    assert running.state == "Running"
    assert trainer_runs([_job(None, **{"bespoke.dev/attempt": "x"})], []) == []


def _rollout(*, observed: int, updated: int, available: int, total: int) -> dict[str, int]:
    return {
        "observedGeneration": observed,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "replicas": total,
    }


@pytest.mark.parametrize(
    ("status", "available"),
    [
        (
            {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2},
            True,
        ),
        (
            {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2},
            False,
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 2, "replicas": 3},
            False,
        ),
    ],
)
def test_serving_is_available_only_when_the_rollout_is_complete(
    status: dict[str, int], available: bool
) -> None:
    deployment = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"bespoke.dev/version": "3"}}}},
        "status": status,
    }
    state = serving_state(deployment, "http://x")
    assert state is not None
    assert state.version == 3
    assert state.available is available


def test_a_version_recorded_under_older_rules_is_still_read() -> None:
    world = InMemoryWorld(yaml.safe_load(next(p for p in example_files()).read_text()))
    world.reconcile()
    body = world.versions[1].model_dump(mode="json", by_alias=True, exclude_none=True)
    snapshot = body["spec"]["snapshot"]
    # Values today's rules refuse in a customization, recorded when they were still accepted.
    snapshot["evaluation"]["gates"] = [{"metric": "accuracy"}]
    snapshot["monitoring"]["threshold"] = "0"
    snapshot["dataset"]["split"] = {"validationFraction": "0.5", "testFraction": "0.45"}
    snapshot["baseModel"]["uri"] = "file://models/base"

    (version,) = parse_versions([body])

    assert version.spec.snapshot.monitoring.threshold == "0"
    with pytest.raises(ValidationError):  # the same values as intent are refused
        ModelCustomization.model_validate(
            {**world.document, "spec": {**world.document["spec"], **snapshot}}
        )


def _waiting_pod(
    *, reason: str | None = None, unschedulable: bool = False, job_uid: str | None = None
) -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": f"{reason}: the detail"}} if reason else {}
    conditions = (
        [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ]
        if unschedulable
        else []
    )
    metadata: dict[str, Any] = {
        "labels": {"batch.kubernetes.io/job-name": "x-v1-train-1"},
        "creationTimestamp": START.isoformat(),
    }
    if job_uid:
        metadata["ownerReferences"] = [{"kind": "Job", "uid": job_uid}]
    statuses = [{"name": "trainer", "state": state}] if state else []
    return {
        "metadata": metadata,
        "status": {"phase": "Pending", "conditions": conditions, "containerStatuses": statuses},
    }


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (_waiting_pod(reason="ImagePullBackOff"), "ImagePullBackOff"),
        (_waiting_pod(reason="CreateContainerConfigError"), "CreateContainerConfigError"),
        (_waiting_pod(reason="InvalidImageName"), "InvalidImageName"),
        (_waiting_pod(unschedulable=True), "Unschedulable"),
        (_waiting_pod(reason="ContainerCreating"), None),  # a slow pull is no problem
    ],
)
def test_a_pod_that_cannot_start_says_why(pod: dict[str, Any], reason: str | None) -> None:
    job = {
        **_job(None),
        "metadata": {**_job(None)["metadata"], "creationTimestamp": "2026-11-02T09:00:00Z"},
    }
    [run] = trainer_runs([job], [pod])
    assert run.state == "Running"
    assert run.pending
    assert run.created_at == START
    if reason is None:
        assert run.startup_problem is None
    else:
        assert run.startup_problem is not None
        assert run.startup_problem.reason == reason
        assert run.startup_problem.message


def test_the_start_up_deadline_counts_from_the_pod_not_from_a_job_that_waited() -> None:
    # A Job held for an hour (Kueue, a full ResourceQuota) gets its pod late: a first, transient
    # ErrImagePull of that pod must not fail the version at once for the Job's age.
    world = InMemoryWorld(customization())
    [version] = [a.version for a in world.reconcile().actions if isinstance(a, CreateVersion)]
    job = {
        **_job(None),
        "metadata": {**_job(None)["metadata"], "creationTimestamp": START.isoformat()},
    }
    pod = _waiting_pod(reason="ErrImagePull")
    pod_created = START + timedelta(hours=1)
    pod["metadata"]["creationTimestamp"] = pod_created.isoformat()
    [run] = trainer_runs([job], [pod])
    assert run.created_at == pod_created
    observed = Observed(
        now=pod_created + timedelta(seconds=5), versions=(version,), trainer_runs=(run,)
    )
    decision = decide(world.mc, observed)
    assert decision.status.trainer_start_deadline == pod_created + timedelta(
        seconds=world.mc.spec.training.startup_deadline_seconds
    )
    assert not [a for a in decision.actions if isinstance(a, StopTrainer)]


def test_a_started_pod_and_a_job_without_pod_are_told_apart() -> None:
    running = _waiting_pod()
    running["status"]["containerStatuses"] = [
        {"name": "trainer", "state": {"running": {"startedAt": START.isoformat()}}}
    ]
    [started] = trainer_runs([_job(None)], [running])
    assert not started.pending
    [queued] = trainer_runs([_job(None)], [])  # no pod yet: Kueue holds it, or just created
    assert queued.pending
    assert queued.startup_problem is None


def test_a_pod_of_an_earlier_job_of_the_same_name_is_not_this_jobs() -> None:
    job = {**_job(None), "metadata": {**_job(None)["metadata"], "uid": "new-job"}}
    [run] = trainer_runs([job], [_waiting_pod(reason="ImagePullBackOff", job_uid="old-job")])
    assert run.startup_problem is None


def test_an_oom_kill_is_out_of_memory_not_a_log_tail() -> None:
    pod = _pod("...last log line", 137)
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    [run] = trainer_runs([_job("Failed")], [pod])
    assert run.summary is not None
    assert run.summary.reason == "OutOfMemory"
    assert "OOMKilled" in (run.summary.message or "")
