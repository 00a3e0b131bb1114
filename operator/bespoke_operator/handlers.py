"""kopf handlers, thin: every trigger runs the same reconcile of one customization.

Run with `kopf run -m bespoke_operator.handlers --all-namespaces` (or `--namespace X`). Triggers:
a ModelCustomization seen for the first time since the operator started (kopf's initial listing,
or a new object) or with a new `metadata.generation` (a spec change); events of the children
(trainer Jobs, serving Deployments, approval annotations on ModelVersions); and one
operator-wide resync loop that reconciles a customization again when something no event
announces falls due (a rollout deadline, a drift reading — see `reconcile.schedule`), when a
failed pass is to be retried, and every resync interval to heal a missed event.

Level-triggered on the generation, like a controller-runtime predicate, rather than kopf's
create/update handlers: those store a diff-base annotation (a copy of the spec) after every
change, which costs a patch, another watch event and two deep copies of the body per change, and
retry through kopf's own machinery. Here the echo of the operator's own status write carries the
generation already handled and is skipped; a failed pass is retried by the resync loop, after 2 s
for an error that heals on its own (10 s after a 429) and 60 s for one a person must fix. One
loop rather than a kopf timer per object: timers cost a task and a finalizer per customization.

Settings (environment): `BESPOKE_TRAINER_IMAGE`, `BESPOKE_SERVING_IMAGE`,
`BESPOKE_RECONCILE_INTERVAL_SECONDS` (default 30: how often work in flight is checked),
`BESPOKE_RESYNC_INTERVAL_SECONDS` (default 10 intervals: settled customizations),
`BESPOKE_METRICS_PORT` (default 9090, 0 = off), `KUBECONFIG` outside a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kopf
from prometheus_client import start_http_server

from bespoke_operator.api import API_VERSION, ModelCustomization, ModelCustomizationStatus
from bespoke_operator.api.crd import GROUP, VERSION
from bespoke_operator.kopf_storage import (
    LeanAnnotationsDiffBaseStorage,
    LeanAnnotationsProgressStorage,
)
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.reconcile import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.conditions import set_condition
from bespoke_operator.reconcile.schedule import next_check
from bespoke_operator.runtimes.kubernetes.client import ApiError, KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.observe import without_server_fields
from bespoke_operator.runtimes.kubernetes.runtime import (
    KubernetesRuntime,
    Outcome,
    status_patch,
    unreconciled,
)

__all__ = ["SERVING_DEPLOYMENTS", "TRAINER_JOBS", "apply_settings"]

_log = logging.getLogger(__name__)
_PLURAL: Final = "modelcustomizations"
_DEFAULT_IMAGE: Final = "ghcr.io/bespoke-dev/bespoke-{component}:0.1.0"
_INTERVAL: Final = float(os.environ.get("BESPOKE_RECONCILE_INTERVAL_SECONDS", "30"))
_RESYNC: Final = float(os.environ.get("BESPOKE_RESYNC_INTERVAL_SECONDS", str(10 * _INTERVAL)))
# How many periodic reconciles run at once: event-driven ones keep their turn between them.
_RESYNC_CONCURRENCY: Final = 8
_PART_OF: Final = {"app.kubernetes.io/part-of": "bespoke"}
#: The labels of the children whose events trigger a reconcile (the runtime puts them there).
TRAINER_JOBS: Final = {**_PART_OF, "app.kubernetes.io/component": "trainer"}
SERVING_DEPLOYMENTS: Final = {**_PART_OF, "app.kubernetes.io/component": "serving"}
# Young-generation collections every 10,000 allocations rather than Python's 700.
_GC_THRESHOLDS: Final = (10_000, 10, 10)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's settings, and the runtime and resync loop in the memo."""
    apply_settings(settings)
    images = Images(
        trainer=os.environ.get("BESPOKE_TRAINER_IMAGE", _DEFAULT_IMAGE.format(component="trainer")),
        serving=os.environ.get("BESPOKE_SERVING_IMAGE", _DEFAULT_IMAGE.format(component="serving")),
    )
    memo.runtime = KubernetesRuntime(await KubeApi.connect(os.environ.get("KUBECONFIG")), images)
    memo.metrics = OperatorMetrics()
    memo.locks = {}
    memo.due = {}  # (namespace, name) -> monotonic time of the next periodic reconcile
    # (namespace, name) -> (uid, generation) last reconciled on its own event; the uid tells a
    # customization deleted and created again under the same name (generation 1 again) apart.
    memo.handled = {}
    memo.resync = asyncio.create_task(_resync_forever(memo), name="bespoke-resync")
    _tune_garbage_collector()
    port = int(os.environ.get("BESPOKE_METRICS_PORT", "9090"))
    if port:
        start_http_server(port, registry=memo.metrics.registry)


def apply_settings(settings: kopf.OperatorSettings) -> None:
    """Our own annotation keys, watch timeouts and selectors, and event posting."""
    # No handler needs a finalizer any more (children go by owner references); naming the one
    # older releases added lets kopf find and remove it from existing customizations.
    settings.persistence.finalizer = "bespoke.dev/finalizer"
    # kopf builds every watched object's essence on every event, with or without change handlers.
    settings.persistence.progress_storage = LeanAnnotationsProgressStorage(prefix="bespoke.dev")
    settings.persistence.diffbase_storage = LeanAnnotationsDiffBaseStorage(
        prefix="bespoke.dev", key="last-handled-configuration"
    )
    # Reconnect watches that went quiet (a silently dropped connection) instead of hanging.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    # Lifecycle events are posted by the runtime; kopf's own only for warnings and errors.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "bespoke-operator"
    settings.peering.standalone = True
    # Only our own trainer Jobs and serving Deployments stream to the operator, not every Job
    # and Deployment in the cluster (the handlers' label filters alone apply after the fact).
    settings.watching.label_selectors["batch", "jobs"] = _selector(TRAINER_JOBS)
    settings.watching.label_selectors["apps", "deployments"] = _selector(SERVING_DEPLOYMENTS)


def _tune_garbage_collector() -> None:
    """Keeps Python's cyclic garbage collector from pausing the event loop for long.

    Everything loaded by now (kopf, the API models, the Kubernetes client's configuration
    loaders) lives as long as the process; frozen, it is no longer traversed by every full
    collection, which at a thousand customizations took about 110 ms each, a dozen times per
    burst, with every event waiting. Fewer young-generation passes cut the rest.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount credentials, else the kubeconfig (no API client library needed)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Stops the resync loop and closes the API client."""
    memo.resync.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await memo.resync
    await memo.runtime.api.close()


@kopf.on.event(GROUP, VERSION, _PLURAL)
async def customization_changed(
    body: kopf.Body, event: kopf.RawEvent, memo: kopf.Memo, **_: Any
) -> None:
    """A customization is new to this operator or its spec changed: reconcile it."""
    key = _key(body)
    metadata = body.get("metadata", {})
    if event.get("type") == "DELETED":
        _forget(memo, key, uid=metadata.get("uid"))
        return
    seen = (metadata.get("uid"), metadata.get("generation"))
    if metadata.get("deletionTimestamp") or memo.handled.get(key) == seen:
        return  # being deleted (children go by owner references), or this spec was handled
    memo.handled[key] = seen
    # Just created, with no status yet: the event's body is as fresh as a re-read would be.
    new = event.get("type") == "ADDED" and unreconciled(body)
    outcome = await _reconcile_or_retry_later(memo, key, known=body if new else None)
    if outcome is not None and outcome.decision is None:
        _log.warning("%s/%s is stalled: %s", *key, _stalled_message(outcome))


@kopf.on.event("batch", "v1", "jobs", labels=TRAINER_JOBS)
@kopf.on.event("apps", "v1", "deployments", labels=SERVING_DEPLOYMENTS)
@kopf.on.event(GROUP, VERSION, "modelversions", annotations={APPROVAL_ANNOTATION: kopf.PRESENT})
async def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A trainer finished, a rollout progressed, or a version was approved: reconcile its owner."""
    if body.get("kind") == "Job" and not _finished(body):
        return  # a Job being created or running changes nothing the core decides on
    name = body.get("metadata", {}).get("labels", {}).get("bespoke.dev/customization")
    namespace = body.get("metadata", {}).get("namespace")
    if name and namespace:
        await _reconcile_or_retry_later(memo, (namespace, name))


async def _reconcile_or_retry_later(
    memo: kopf.Memo, key: tuple[str, str], *, known: Mapping[str, Any] | None = None
) -> Outcome | None:
    """An event-driven reconcile; an API failure is logged, and the resync loop retries it."""
    try:
        outcome = await _reconcile(memo, key, known=known, read_drift=False)
    except ApiError as exc:
        delay = memo.due.get(key, time.monotonic()) - time.monotonic()
        _log.warning("Reconcile of %s/%s failed (%s); retrying in %.0f s", *key, exc, delay)
        return None
    if outcome is None:  # gone: e.g. the event of a child garbage-collected after it
        _forget(memo, key)
    return outcome


async def _resync_forever(memo: kopf.Memo) -> None:
    """Reconciles each customization whose next periodic check has come (see module docs)."""
    tick = max(0.5, min(1.0, _INTERVAL / 5))
    gate = asyncio.Semaphore(_RESYNC_CONCURRENCY)
    running: dict[tuple[str, str], asyncio.Task[None]] = {}
    try:
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            # Not waiting for the passes started earlier: a slow one (a drift reading that
            # times out) must not hold back a retry due in 2 s.
            for key in [k for k, at in memo.due.items() if at <= now and k not in running]:
                memo.due[key] = now + _INTERVAL  # a fallback, should this pass not reschedule
                running[key] = asyncio.create_task(_resync_one(memo, key, gate))
                running[key].add_done_callback(functools.partial(_finished_pass, running, key))
    finally:
        for task in list(running.values()):
            task.cancel()


def _finished_pass(
    running: dict[tuple[str, str], asyncio.Task[None]], key: tuple[str, str], _: object
) -> None:
    running.pop(key, None)


async def _resync_one(memo: kopf.Memo, key: tuple[str, str], gate: asyncio.Semaphore) -> None:
    async with gate:
        try:
            outcome = await _reconcile(memo, key, read_drift=True)
        except ApiError as exc:  # already rescheduled by `_reconcile`
            _log.warning("Periodic reconcile of %s/%s failed: %s", *key, exc)
            return
        except Exception:  # the loop must outlive any one customization's failure
            _log.exception("Periodic reconcile of %s/%s failed", *key)
            return
    if outcome is None:  # deleted
        _forget(memo, key)


def _forget(memo: kopf.Memo, key: tuple[str, str], uid: str | None = None) -> None:
    """Drops what the operator remembers of a deleted customization.

    With `uid`, only if that is the object remembered: a DELETED event may come after the first
    event of another customization created under the same name.
    """
    remembered = memo.handled.get(key)
    if uid is not None and remembered is not None and remembered[0] != uid:
        return
    memo.due.pop(key, None)
    memo.handled.pop(key, None)
    memo.metrics.forget(*key)
    lock = memo.locks.get(key)
    if lock is not None and not lock.locked():
        del memo.locks[key]


def _schedule(memo: kopf.Memo, key: tuple[str, str], outcome: Outcome) -> None:
    now = datetime.now(UTC)
    at = next_check(
        outcome.customization,
        outcome.status,
        now=now,
        interval=timedelta(seconds=_INTERVAL),
        resync=timedelta(seconds=_RESYNC),
    )
    # Jitter, so customizations created together do not all come due in the same tick.
    delay = (at - now).total_seconds() * random.uniform(1.0, 1.1)
    memo.due[key] = time.monotonic() + delay


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = body["metadata"]
    return metadata["namespace"], metadata["name"]


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    return bool(status.get("succeeded") or status.get("failed")) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


async def _reconcile(
    memo: kopf.Memo,
    key: tuple[str, str],
    *,
    read_drift: bool,
    known: Mapping[str, Any] | None = None,
) -> Outcome | None:
    """One reconcile of a customization; None when it no longer exists.

    A pass that fails is rescheduled for the resync loop before the error is raised.
    """
    lock = memo.locks.setdefault(key, asyncio.Lock())
    started = time.perf_counter()
    runtime: KubernetesRuntime = memo.runtime
    metrics: OperatorMetrics = memo.metrics
    current: Mapping[str, Any] = known or {"metadata": {"namespace": key[0], "name": key[1]}}
    async with lock:
        try:
            # Status is computed from the freshest object, never from a stale event body.
            fresh = known or await runtime.api.get(resource_path(API_VERSION, _PLURAL, *key))
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            current = fresh
            drift = await _drift_if_due(runtime, fresh) if read_drift else None
            outcome = await runtime.reconcile(fresh, drift, new=known is not None)
            if _status_changed(fresh, outcome):
                await _write_status(runtime, key, outcome)
        except ApiError as exc:
            metrics.observe_reconcile(
                "temporary" if exc.retryable else "error", time.perf_counter() - started
            )
            memo.due[key] = time.monotonic() + _retry_delay(exc)
            if not exc.retryable:
                await _report_failure(runtime, key, current, exc)
            raise
        except Exception:
            metrics.observe_reconcile("error", time.perf_counter() - started)
            memo.due[key] = time.monotonic() + _INTERVAL
            raise
    metrics.observe_reconcile("success", time.perf_counter() - started)
    if outcome.decision is not None:
        metrics.observe_decision(*key, outcome.decision)
    metrics.observe_status(*key, outcome.status, outcome.customization)
    _schedule(memo, key, outcome)
    return outcome


def _retry_delay(exc: ApiError) -> float:
    """Seconds before a failed pass is retried: throttling backs off, a person needs longer."""
    if exc.status == 429:
        return 10
    return 2 if exc.retryable else 60


async def _drift_if_due(runtime: KubernetesRuntime, body: Mapping[str, Any]) -> Any:
    try:
        mc = ModelCustomization.model_validate(without_server_fields(body))
    except ValueError:
        return None
    drift = mc.status.drift if mc.status else None
    interval = timedelta(seconds=mc.spec.monitoring.interval_seconds)
    if drift is not None and datetime.now(UTC) - drift.checked_at < interval:
        return None
    return await runtime.read_drift(mc)


def _status_changed(body: Mapping[str, Any], outcome: Outcome) -> bool:
    """Whether the new status differs from the stored one (an unchanged one is not rewritten)."""
    try:
        stored = ModelCustomizationStatus.model_validate(body.get("status") or {})
    except ValueError:
        return True
    return stored != outcome.status


async def _write_status(runtime: KubernetesRuntime, key: tuple[str, str], outcome: Outcome) -> None:
    path = resource_path(API_VERSION, _PLURAL, *key, "status")
    await runtime.api.merge_patch(path, {"status": status_patch(outcome.status)})


async def _report_failure(
    runtime: KubernetesRuntime, key: tuple[str, str], body: Mapping[str, Any], exc: ApiError
) -> None:
    """A permanent API failure (e.g. a missing RBAC permission) shows as Stalled, not silence."""
    message = f"the operator cannot continue: {exc}"
    _log.error("Reconcile of %s/%s failed: %s", *key, exc)
    try:
        previous = ModelCustomization.model_validate(without_server_fields(body)).status
    except ValueError:
        previous = None
    conditions = previous.conditions if previous else []
    now = datetime.now(UTC)
    generation = body["metadata"].get("generation")
    conditions = set_condition(
        conditions, "Stalled", True, "ApiRequestFailed", message, now=now, generation=generation
    )
    conditions = set_condition(
        conditions, "Ready", False, "ApiRequestFailed", message, now=now, generation=generation
    )
    try:
        await runtime.api.merge_patch(
            resource_path(API_VERSION, _PLURAL, *key, "status"),
            {
                "status": {
                    "conditions": [c.model_dump(mode="json", by_alias=True) for c in conditions]
                }
            },
        )
    except ApiError as second:
        _log.error("Cannot write the failure into %s/%s status either: %s", *key, second)


def _stalled_message(outcome: Outcome) -> str:
    stalled = next((c for c in outcome.status.conditions if c.type == "Stalled"), None)
    return stalled.message if stalled else "invalid spec"
