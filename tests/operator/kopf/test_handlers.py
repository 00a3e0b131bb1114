"""The kopf handlers' triggers and the controller's error mapping, against kmock's emulator.

A customization is reconciled on its first event and on each new generation, not on the echo of
the operator's own status write. A failed pass is retried by the resync queue: retryable API
answers (409, 429, 5xx) after a backoff that honours `Retry-After`, a permanent one (403) after a
minute and written into status as Stalled; an invalid spec is Stalled/InvalidSpec with no Job.
The controller's random source is fixed at 1.0 (the top of each jitter range), so delays are
exact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import kopf
import pytest

from bespoke_operator import handlers
from bespoke_operator.api import API_VERSION
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.controller import Controller
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime
from bespoke_operator.settings import OperatorSettings
from tests.operator.kopf.conftest import NAME, NAMESPACE, Fault, FaultyKubernetes, customization

pytestmark = pytest.mark.asyncio

MC_PATH = resource_path(API_VERSION, "modelcustomizations", NAMESPACE, NAME)
KEY = (NAMESPACE, NAME)
SETTINGS = OperatorSettings()
# kopf's decorators type the handler as its callback protocol (every kwarg kopf passes); the
# handler itself takes only `body`, `event` and `memo`, which is how these tests call it.
_customization_changed = cast("Callable[..., Awaitable[None]]", handlers.customization_changed)


async def on_event(memo: kopf.Memo, body: kopf.Body, kind: str | None = "ADDED") -> None:
    """Delivers one watch event of the customization as kopf does (None: the initial listing)."""
    await _customization_changed(body=body, event={"type": kind, "object": body}, memo=memo)


async def _retry_now(memo: kopf.Memo) -> None:
    """The resync queue's next pass over the customization, without waiting for its delay."""
    await memo.controller.periodic(KEY)


def _forgotten(memo: kopf.Memo) -> bool:
    """Whether the operator remembers nothing of the customization any more."""
    return not memo.controller.remembers(KEY)


def _retry_in(memo: kopf.Memo) -> float:
    due = memo.controller.queue.due_in(KEY)
    assert due is not None, "no pass is scheduled"
    return float(due)


def _memo(api: KubeApi) -> kopf.Memo:
    memo = kopf.Memo()
    runtime = KubernetesRuntime(api, Images(trainer="trainer:test", serving="serving:test"))
    memo.controller = Controller(runtime, OperatorMetrics(), SETTINGS, random=lambda: 1.0)
    return memo


async def _create(api: KubeApi, body: dict[str, Any] | None = None) -> kopf.Body:
    await api.create(
        resource_path(API_VERSION, "modelcustomizations", NAMESPACE), body or customization()
    )
    stored = await api.get(MC_PATH)
    assert stored is not None
    return kopf.Body(cast("kopf.RawBody", stored))


def _conditions(kube: FaultyKubernetes) -> dict[str, tuple[str, str]]:
    (mc,) = kube.stored("modelcustomizations")
    return {
        c["type"]: (c["status"], c["reason"])
        for c in (mc.get("status") or {}).get("conditions", [])
    }


def _reconciles(memo: kopf.Memo, result: str) -> float:
    value = memo.controller.metrics.registry.get_sample_value(
        "bespoke_reconcile_total", {"result": result}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("call", "status", "retry_after", "delay"),
    [
        (("POST", "/jobs"), 500, None, 2),
        (("POST", "/jobs"), 429, "10", 10),  # the server's Retry-After, honoured
        (("POST", "/jobs"), 429, None, 2),
        (("POST", "/configmaps"), 503, "7", 7),
        (("PATCH", f"/modelcustomizations/{NAME}/status"), 500, None, 2),
    ],
)
async def test_retryable_answers_are_retried_after_their_delay_and_the_retry_heals(
    kube: FaultyKubernetes,
    api: KubeApi,
    call: tuple[str, str],
    status: int,
    retry_after: str | None,
    delay: int,
) -> None:
    memo = _memo(api)
    body = await _create(api)
    fault = Fault(*call, status, retry_after=retry_after)
    kube.faults.append(fault)

    await on_event(memo, body)

    assert fault.hits, "the fault was never reached"
    assert delay - 1 < _retry_in(memo) <= delay
    assert _reconciles(memo, "temporary") == 1
    assert "Stalled" not in _conditions(kube) or _conditions(kube)["Stalled"][0] == "False"

    # The resync loop runs the pass again after the delay; the server answers normally by then.
    await _retry_now(memo)

    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]
    assert _conditions(kube)["Reconciling"] == ("True", "Training")
    assert _conditions(kube)["Stalled"] == ("False", "AsExpected")
    assert _reconciles(memo, "success") == 1


async def test_permanent_api_failure_is_written_as_stalled_and_retried_slowly(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    kube.faults.append(Fault("POST", "/jobs", 403))

    await on_event(memo, body)

    # Still retried (a person may grant the permission), but slowly and visibly.
    assert 59 < _retry_in(memo) <= 60
    assert _conditions(kube)["Stalled"] == ("True", "ApiRequestFailed")
    assert _conditions(kube)["Ready"] == ("False", "ApiRequestFailed")
    assert _reconciles(memo, "error") == 1
    assert kube.stored("jobs") == []
    # The echo of that status write does not run the failing pass again at once.
    (echo,) = kube.stored("modelcustomizations")
    await on_event(memo, kopf.Body(echo), "MODIFIED")
    assert _reconciles(memo, "error") == 1


async def test_invalid_spec_is_stalled_with_a_reason_and_no_job(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    document = customization()
    document["spec"]["training"]["learningRate"] = 0.0002
    body = await _create(api, document)

    await on_event(memo, body)

    conditions = _conditions(kube)
    assert conditions["Stalled"] == ("True", "InvalidSpec")
    assert conditions["Reconciling"] == ("False", "InvalidSpec")
    (mc,) = kube.stored("modelcustomizations")
    assert "learningRate" in next(
        c["message"] for c in mc["status"]["conditions"] if c["type"] == "Stalled"
    )
    assert mc["status"]["observedGeneration"] == 1
    assert kube.stored("jobs") == []
    assert kube.stored("modelversions") == []


async def test_reconciled_on_first_sight_and_new_generations_not_on_its_own_status_echo(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await on_event(memo, body)
    assert _reconciles(memo, "success") == 1

    # The operator's own status write comes back as an event of the same generation.
    (echo,) = kube.stored("modelcustomizations")
    assert echo["status"]["observedGeneration"] == echo["metadata"]["generation"]
    await on_event(memo, kopf.Body(echo), "MODIFIED")
    assert _reconciles(memo, "success") == 1

    # Deleted and created again under the same name while the DELETED event was missed (a
    # watch that reconnected): generation 1 again, but another object.
    reborn = {**echo, "metadata": {**echo["metadata"], "uid": "another-uid"}}
    await on_event(memo, kopf.Body(reborn), "ADDED")
    assert _reconciles(memo, "success") == 2

    # A spec change is a new generation.
    changed = {**reborn, "metadata": {**reborn["metadata"], "generation": 2}}
    await on_event(memo, kopf.Body(changed), "MODIFIED")
    assert _reconciles(memo, "success") == 3

    # A restarted operator (nothing remembered) reconciles what its initial listing shows.
    restarted = _memo(api)
    await on_event(restarted, kopf.Body(echo), None)
    assert _reconciles(restarted, "success") == 1
    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]

    # Deleted: forgotten.
    await on_event(memo, kopf.Body(changed), "DELETED")
    assert _forgotten(memo)


async def test_the_resync_loop_reconciles_what_is_due_and_forgets_what_is_gone(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await on_event(memo, body)
    # Training waits for its Job's event; the periodic pass only heals, at the resync interval.
    assert _retry_in(memo) > SETTINGS.reconcile_interval_seconds

    await _retry_now(memo)
    assert _reconciles(memo, "success") == 2
    assert _retry_in(memo) > SETTINGS.reconcile_interval_seconds
    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]

    await api.delete(MC_PATH)
    await _retry_now(memo)
    assert _forgotten(memo)


_child_changed = cast("Callable[..., Awaitable[None]]", handlers.child_changed)


async def test_a_finished_trainer_reconciles_its_owner_and_a_running_one_does_not(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await on_event(memo, body)
    (job,) = kube.stored("jobs")

    await _child_changed(body=kopf.Body(job), memo=memo)
    assert _reconciles(memo, "success") == 1

    finished = {**job, "status": {"failed": 1}}
    await _child_changed(body=kopf.Body(finished), memo=memo)
    assert _reconciles(memo, "success") == 2

    # The events of children garbage-collected after their customization leave nothing behind.
    await api.delete(MC_PATH)
    await on_event(memo, body, "DELETED")
    await _child_changed(body=kopf.Body(finished), memo=memo)
    assert _forgotten(memo)


async def test_a_late_deleted_event_of_an_older_namesake_keeps_the_new_one_remembered(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await on_event(memo, body)
    older = {**body, "metadata": {**body["metadata"], "uid": "the-deleted-one"}}

    await on_event(memo, kopf.Body(older), "DELETED")

    assert memo.controller.remembers(KEY)
    # The new one is still the one handled: its echo is not reconciled again.
    await on_event(memo, body, "MODIFIED")
    assert _reconciles(memo, "success") == 1


async def test_a_customization_deleted_during_a_pass_leaves_nothing_behind(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await on_event(memo, body)
    runtime = memo.controller.runtime
    reconcile_and_record = runtime.reconcile_and_record

    async def deleted_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # The pass read the customization; it is deleted, and its DELETED event handled, before
        # the pass ends.
        outcome = await reconcile_and_record(*args, **kwargs)
        await api.delete(MC_PATH)
        await on_event(memo, body, "DELETED")
        return outcome

    runtime.reconcile_and_record = deleted_meanwhile
    await _retry_now(memo)

    assert _forgotten(memo)  # no periodic pass scheduled for it, no lock kept
    ready = memo.controller.metrics.registry.get_sample_value(
        "bespoke_customization_condition",
        {"namespace": NAMESPACE, "customization": NAME, "type": "Ready"},
    )
    assert ready is None  # its series stay removed
