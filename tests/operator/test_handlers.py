"""The kopf handlers' error mapping, called directly against kmock's emulator.

Retryable API answers (409, 429, 5xx) become `kopf.TemporaryError` with a delay (429 backs off
longer); a permanent one (403) is written into status as Stalled; an invalid spec is a
`kopf.PermanentError` with Stalled/InvalidSpec in status and no Job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import kopf
import pytest

from bespoke_operator import handlers
from bespoke_operator.api import API_VERSION
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime
from tests.operator.conftest import NAME, NAMESPACE, Fault, FaultyKubernetes, customization

pytestmark = pytest.mark.asyncio

MC_PATH = resource_path(API_VERSION, "modelcustomizations", NAMESPACE, NAME)
# kopf's decorators type the handler as its callback protocol (every kwarg kopf passes); the
# handler itself takes only `body` and `memo`, which is how these tests call it.
reconcile_customization = cast("Callable[..., Awaitable[None]]", handlers.reconcile_customization)


def _memo(api: KubeApi) -> kopf.Memo:
    memo = kopf.Memo()
    memo.runtime = KubernetesRuntime(api, Images(trainer="trainer:test", serving="serving:test"))
    memo.metrics = OperatorMetrics()
    memo.locks = {}
    memo.due = {}
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
    value = memo.metrics.registry.get_sample_value("bespoke_reconcile_total", {"result": result})
    return value or 0.0


@pytest.mark.parametrize(
    ("call", "status", "delay"),
    [
        (("POST", "/jobs"), 500, 2),
        (("POST", "/jobs"), 429, 10),
        (("POST", "/configmaps"), 503, 2),
        (("PATCH", f"/modelcustomizations/{NAME}/status"), 500, 2),
    ],
)
async def test_retryable_answers_become_temporary_errors_and_the_retry_heals(
    kube: FaultyKubernetes, api: KubeApi, call: tuple[str, str], status: int, delay: int
) -> None:
    memo = _memo(api)
    body = await _create(api)
    fault = Fault(*call, status)
    kube.faults.append(fault)

    with pytest.raises(kopf.TemporaryError) as raised:
        await reconcile_customization(body=body, memo=memo)

    assert fault.hits, "the fault was never reached"
    assert raised.value.delay == delay
    assert str(status) in str(raised.value)
    assert _reconciles(memo, "temporary") == 1
    assert "Stalled" not in _conditions(kube) or _conditions(kube)["Stalled"][0] == "False"

    # kopf calls the handler again after the delay; the server answers normally by then.
    await reconcile_customization(body=body, memo=memo)

    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]
    assert _conditions(kube)["Reconciling"] == ("True", "Training")
    assert _conditions(kube)["Stalled"] == ("False", "AsExpected")
    assert _reconciles(memo, "success") == 1


async def test_permanent_api_failure_is_written_as_stalled(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    kube.faults.append(Fault("POST", "/jobs", 403))

    with pytest.raises(kopf.TemporaryError) as raised:
        await reconcile_customization(body=body, memo=memo)

    # Still retried (a person may grant the permission), but slowly and visibly.
    assert raised.value.delay == 60
    assert _conditions(kube)["Stalled"] == ("True", "ApiRequestFailed")
    assert _conditions(kube)["Ready"] == ("False", "ApiRequestFailed")
    assert _reconciles(memo, "error") == 1
    assert kube.stored("jobs") == []


async def test_invalid_spec_is_a_permanent_error_with_stalled_status_and_no_job(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    document = customization()
    document["spec"]["training"]["learningRate"] = 0.0002
    body = await _create(api, document)

    with pytest.raises(kopf.PermanentError, match="learningRate"):
        await reconcile_customization(body=body, memo=memo)

    conditions = _conditions(kube)
    assert conditions["Stalled"] == ("True", "InvalidSpec")
    assert conditions["Reconciling"] == ("False", "InvalidSpec")
    (mc,) = kube.stored("modelcustomizations")
    assert mc["status"]["observedGeneration"] == 1
    assert kube.stored("jobs") == []
    assert kube.stored("modelversions") == []


async def test_the_resync_loop_reconciles_what_is_due_and_forgets_what_is_gone(
    kube: FaultyKubernetes, api: KubeApi
) -> None:
    memo = _memo(api)
    body = await _create(api)
    await reconcile_customization(body=body, memo=memo)
    key = (NAMESPACE, NAME)
    # Training waits for its Job's event; the periodic pass only heals, at the resync interval.
    assert memo.due[key] - time.monotonic() > handlers._INTERVAL

    gate = asyncio.Semaphore(1)
    memo.due[key] = 0.0
    await handlers._resync_one(memo, key, gate)
    assert _reconciles(memo, "success") == 2
    assert memo.due[key] - time.monotonic() > handlers._INTERVAL
    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]

    await api.delete(MC_PATH)
    await handlers._resync_one(memo, key, gate)
    assert key not in memo.due
    assert key not in memo.locks
