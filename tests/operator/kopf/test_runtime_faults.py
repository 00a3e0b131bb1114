"""The Kubernetes runtime against kmock's emulator: idempotent passes, 409s, faults, bad specs.

kmock answers like an API server but is not one (no label selectors, no schema, no defaults):
the same behaviours are proven on the real kube-apiserver in tests/operator/cluster/test_operator.py
where a real server can produce them; the faults here are the ones it cannot produce on demand.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bespoke_operator.api import API_VERSION
from bespoke_operator.errors import ApiError
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime, status_patch
from tests.operator.kopf.conftest import NAME, NAMESPACE, Fault, FaultyKubernetes, customization

pytestmark = pytest.mark.asyncio

JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
MC_PATH = resource_path(API_VERSION, "modelcustomizations", NAMESPACE, NAME)


async def _stored_customization(api: KubeApi, body: dict[str, Any] | None = None) -> dict[str, Any]:
    await api.create(
        resource_path(API_VERSION, "modelcustomizations", NAMESPACE), body or customization()
    )
    fresh = await api.get(MC_PATH)
    assert fresh is not None
    return fresh


def _runtime(api: KubeApi) -> KubernetesRuntime:
    return KubernetesRuntime(api, Images(trainer="trainer:test", serving="serving:test"))


def _names(kube: FaultyKubernetes, plural: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in kube.stored(plural))


def _condition(outcome_status: Any, type_: str) -> tuple[str, str]:
    condition = next(c for c in outcome_status.conditions if c.type == type_)
    return condition.status, condition.reason


def _trains_v1(kube: FaultyKubernetes, outcome: Any) -> None:
    """Where every healed pass ends: v1 recorded, its config and one Job, and training."""
    assert _names(kube, "modelversions") == ["sentiment-v1"]
    assert _names(kube, "configmaps") == ["sentiment-v1-trainer"]
    assert _names(kube, "jobs") == ["sentiment-v1-train-1"]
    assert _condition(outcome.status, "Reconciling") == ("True", "Training")


async def test_repeated_passes_create_one_version_one_config_and_one_job(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)

    for _ in range(3):
        outcome = await runtime.reconcile(body)
        body = {**body, "status": status_patch(outcome.status)}  # as the handler writes it

    assert _names(kube, "modelversions") == ["sentiment-v1"]
    assert _names(kube, "configmaps") == ["sentiment-v1-trainer"]
    assert _names(kube, "jobs") == ["sentiment-v1-train-1"]
    assert len(kube["post", JOBS]) == 1  # later passes saw the Job and asked for nothing
    # All owned by the customization: the Job needs no uid of a version written in the same pass.
    for child in (kube.stored("jobs")[0], kube.stored("configmaps")[0]):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("ModelCustomization", body["metadata"]["uid"])
    assert _condition(outcome.status, "Reconciling") == ("True", "Training")


async def test_a_new_customization_is_created_for_without_reading_children(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    body = await _stored_customization(api)

    outcome = await _runtime(api).reconcile(body, new=True)

    versions = resource_path(API_VERSION, "modelversions", NAMESPACE)
    assert len(kube["get", JOBS]) == len(kube["get", versions]) == 0
    assert _names(kube, "jobs") == ["sentiment-v1-train-1"]
    assert _condition(outcome.status, "Reconciling") == ("True", "Training")


async def test_a_status_of_server_defaults_only_still_counts_as_new(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    """The server reads an unwritten status as its schema's defaults, never as no status."""
    body = await _stored_customization(api)
    body = {**body, "status": {"conditions": [], "latestVersion": 0}}

    await _runtime(api).reconcile(body, new=True)

    assert len(kube["get", JOBS]) == 0
    assert _names(kube, "jobs") == ["sentiment-v1-train-1"]


async def test_a_status_less_pass_after_a_crash_still_ends_with_one_job(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    # Created the children, then "crashed" before the status write.
    await runtime.reconcile(body, new=True)

    outcome = await runtime.reconcile(body, new=True)

    _trains_v1(kube, outcome)


async def test_conflict_on_job_create_is_success(kube: FaultyKubernetes, api: KubeApi) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    await runtime.reconcile(body)
    original = kube.stored("jobs")[0]
    # A stale read (an informer cache, a lagging replica) hides the Job the last pass created,
    # so the next pass creates it again and the server answers 409 Conflict.
    kube.override["get", JOBS] << {"kind": "JobList", "apiVersion": "batch/v1", "items": []}

    outcome = await runtime.reconcile(body)

    assert len(kube["post", JOBS]) == 2
    assert _names(kube, "jobs") == ["sentiment-v1-train-1"]
    # The emulator answers a repeated create with 409 (seen raw here), which `create` maps to False.
    with pytest.raises(ApiError) as conflict:
        await api._call("POST", JOBS, body=original)
    assert conflict.value.status == 409
    assert await api.create(JOBS, original) is False
    assert kube.stored("jobs")[0] == original  # the existing Job is left as it was
    assert _condition(outcome.status, "Stalled") == ("False", "AsExpected")
    assert _condition(outcome.status, "Reconciling") == ("True", "Training")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_error_on_job_create_surfaces_as_retryable_then_heals(
    kube: FaultyKubernetes, api: KubeApi, status: int
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    kube.faults.append(Fault("POST", "/jobs", status))

    with pytest.raises(ApiError) as raised:
        await runtime.reconcile(body)

    assert raised.value.status == status
    assert raised.value.retryable
    assert _names(kube, "jobs") == []
    # The version and its config were created alongside the failed Job; the retry reuses them.
    assert _names(kube, "modelversions") == ["sentiment-v1"]
    _trains_v1(kube, await runtime.reconcile(body))


async def test_no_trainer_is_left_running_when_its_version_could_not_be_recorded(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    kube.faults.append(Fault("POST", "/modelversions", 500))

    with pytest.raises(ApiError) as raised:
        await runtime.reconcile(body, new=True)

    # The version, its config and its Job are written at once; without the version record the
    # config and Job that made it are deleted again (a retry might plan v1 from another spec).
    assert raised.value.status == 500
    assert len(kube["post", JOBS]) == 1
    assert _names(kube, "modelversions") == _names(kube, "jobs") == []
    assert _names(kube, "configmaps") == []
    _trains_v1(kube, await runtime.reconcile(body, new=True))


async def test_a_leftover_trainer_of_another_spec_is_replaced_not_adopted(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    other_spec = copy.deepcopy(body)
    other_spec["spec"]["method"]["lora"]["r"] = 32
    # An earlier pass wrote v1's config and Job for another spec; v1 itself was never recorded
    # and removing them failed too. A status-less first pass does not list children, so its
    # creates meet them: a 409 that must not adopt a trainer of the wrong spec.
    await runtime.reconcile(other_spec, new=True)
    await api.delete(resource_path(API_VERSION, "modelversions", NAMESPACE, "sentiment-v1"))

    with pytest.raises(ApiError) as raised:
        await runtime.reconcile(body, new=True)

    assert raised.value.status == 409
    assert raised.value.retryable
    assert "leftover" in str(raised.value)
    assert _names(kube, "jobs") == _names(kube, "configmaps") == []
    outcome = await runtime.reconcile(body)  # the retry
    version_hash = kube.stored("modelversions")[0]["spec"]["trainingHash"]
    for child in (kube.stored("jobs")[0], kube.stored("configmaps")[0]):
        assert child["metadata"]["annotations"]["bespoke.dev/training-hash"] == version_hash
    _trains_v1(kube, outcome)


async def test_a_trainer_created_twice_for_the_same_spec_is_adopted(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    await runtime.reconcile(body, new=True)
    job = kube.stored("jobs")[0]

    await runtime.reconcile(body, new=True)  # 409s on the same spec's objects

    assert kube.stored("jobs") == [job]
    assert len(kube["post", JOBS]) == 2
    assert len(kube["delete", JOBS + "/sentiment-v1-train-1"]) == 0


async def test_forbidden_is_not_retryable(kube: FaultyKubernetes, api: KubeApi) -> None:
    body = await _stored_customization(api)
    kube.faults.append(Fault("POST", "/jobs", 403))

    with pytest.raises(ApiError) as raised:
        await _runtime(api).reconcile(body)

    assert raised.value.status == 403
    assert not raised.value.retryable


async def test_invalid_spec_is_stalled_with_a_reason_and_creates_nothing(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    # The CRD rejects this on a real server; the runtime must still refuse it if it gets through
    # (an older CRD, a schema bypassed by a status-only write, a hand-edited object).
    body = customization()
    body["spec"]["training"]["learningRate"] = 0.0002
    stored = await _stored_customization(api, body)

    outcome = await _runtime(api).reconcile(stored)

    assert outcome.decision is None
    stalled = next(c for c in outcome.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "InvalidSpec")
    assert "learningRate" in stalled.message
    assert _condition(outcome.status, "Ready") == ("False", "InvalidSpec")
    assert outcome.status.observed_generation == 1
    assert _names(kube, "jobs") == []
    assert _names(kube, "modelversions") == []
    assert len(kube["post", JOBS]) == 0


async def test_a_relative_data_path_is_refused_on_a_cluster_before_any_version(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    # Valid for `bespoke run`, which resolves it against the file; a trainer pod could not.
    body = customization()
    body["spec"]["dataset"]["train"]["uri"] = "data/sentiment/train.jsonl"
    stored = await _stored_customization(api, body)

    outcome = await _runtime(api).reconcile(stored, new=True)

    assert outcome.decision is None
    stalled = next(c for c in outcome.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "InvalidSpec")
    assert stalled.message.startswith("spec.dataset.train.uri: data/sentiment/train.jsonl")
    assert "pvc://claim/path" in stalled.message
    assert _names(kube, "modelversions") == _names(kube, "jobs") == []


async def test_an_earlier_namesakes_trainer_is_neither_observed_nor_adopted(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    earlier = copy.deepcopy(body)
    earlier["metadata"]["uid"] = "uid-of-an-earlier-sentiment"
    # The earlier customization of this name was deleted; its version is gone, and its trainer
    # objects still await the garbage collector.
    await runtime.reconcile(earlier, new=True)
    await api.delete(resource_path(API_VERSION, "modelversions", NAMESPACE, "sentiment-v1"))

    with pytest.raises(ApiError) as raised:
        await runtime.reconcile(body)  # a pass that observes: the old Job is not this one's

    assert raised.value.status == 409
    assert _names(kube, "jobs") == _names(kube, "configmaps") == []
    _trains_v1(kube, await runtime.reconcile(body))
    owner = kube.stored("jobs")[0]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == body["metadata"]["uid"]


async def test_an_earlier_namesakes_version_is_neither_observed_nor_adopted(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    earlier = copy.deepcopy(body)
    earlier["metadata"]["uid"] = "uid-of-an-earlier-sentiment"
    for new in (True, False):  # the first pass creates blind; a resync pass observes first
        # The earlier customization of this name trained v1 from the same spec (so the training
        # hash matches) and was deleted; its version awaits the garbage collector.
        await runtime.reconcile(earlier, new=True)
        stale = kube.stored("modelversions")[0]
        assert stale["metadata"]["ownerReferences"][0]["uid"] == "uid-of-an-earlier-sentiment"
        with pytest.raises(ApiError) as raised:
            await runtime.reconcile(body, new=new)
        assert raised.value.status == 409
        assert raised.value.retryable
        assert "earlier customization" in str(raised.value)
        assert _names(kube, "modelversions") == []  # the leftover is gone, not adopted

    _trains_v1(kube, await runtime.reconcile(body))  # the retry
    owner = kube.stored("modelversions")[0]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == body["metadata"]["uid"]


async def test_an_earlier_namesakes_deployment_is_removed_not_served(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    runtime = _runtime(api)
    body = await _stored_customization(api)
    stale = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "sentiment-serving",
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelCustomization",
                    "name": NAME,
                    "uid": "uid-of-an-earlier-sentiment",
                    "controller": True,
                }
            ],
        },
        "spec": {"template": {"metadata": {"labels": {"bespoke.dev/version": "1"}}}},
        "status": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
    }
    deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    await api.create(deployments, stale)
    outcome = await runtime.reconcile(body)
    assert kube.stored("deployments") == []
    assert outcome.status.production_version is None
