"""kopf handlers, thin: every trigger runs the same reconcile of one customization.

Run with `kopf run -m bespoke_operator.handlers --all-namespaces` (or `--namespace X`). Triggers:
create/update/resume of a ModelCustomization, a timer (which also reads `/drift`), and events of
the children (trainer Jobs, serving Deployments, approval annotations on ModelVersions), so a
missed event heals within one interval.

Settings (environment): `BESPOKE_TRAINER_IMAGE`, `BESPOKE_SERVING_IMAGE`,
`BESPOKE_RECONCILE_INTERVAL_SECONDS` (default 30), `BESPOKE_METRICS_PORT` (default 9090, 0 = off),
`KUBECONFIG` outside a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kopf
from prometheus_client import start_http_server

from bespoke_operator.api import API_VERSION, ModelCustomization, ModelCustomizationStatus
from bespoke_operator.api.crd import GROUP, VERSION
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.reconcile import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.conditions import set_condition
from bespoke_operator.runtimes.kubernetes.client import ApiError, KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.observe import without_server_fields
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime, Outcome, status_patch

__all__: list[str] = []

_log = logging.getLogger(__name__)
_PLURAL: Final = "modelcustomizations"
_DEFAULT_IMAGE: Final = "ghcr.io/bespoke-dev/bespoke-{component}:0.1.0"
_INTERVAL: Final = float(os.environ.get("BESPOKE_RECONCILE_INTERVAL_SECONDS", "30"))
_PART_OF: Final = {"app.kubernetes.io/part-of": "bespoke"}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Our own annotation keys and finalizer, watch timeouts, and the runtime in the memo."""
    settings.persistence.finalizer = "bespoke.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="bespoke.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
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
    images = Images(
        trainer=os.environ.get("BESPOKE_TRAINER_IMAGE", _DEFAULT_IMAGE.format(component="trainer")),
        serving=os.environ.get("BESPOKE_SERVING_IMAGE", _DEFAULT_IMAGE.format(component="serving")),
    )
    memo.runtime = KubernetesRuntime(await KubeApi.connect(os.environ.get("KUBECONFIG")), images)
    memo.metrics = OperatorMetrics()
    memo.locks = {}
    port = int(os.environ.get("BESPOKE_METRICS_PORT", "9090"))
    if port:
        start_http_server(port, registry=memo.metrics.registry)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount credentials, else the kubeconfig (no API client library needed)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Closes the API client."""
    await memo.runtime.api.close()


@kopf.on.resume(GROUP, VERSION, _PLURAL)
@kopf.on.create(GROUP, VERSION, _PLURAL)
@kopf.on.update(GROUP, VERSION, _PLURAL)
async def reconcile_customization(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The spec was created or changed (or the operator restarted)."""
    outcome = await _reconcile(memo, body, read_drift=False)
    if outcome is not None and outcome.decision is None:
        raise kopf.PermanentError(_stalled_message(outcome))


@kopf.timer(GROUP, VERSION, _PLURAL, interval=_INTERVAL, initial_delay=_INTERVAL)
async def reconcile_periodically(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Heals missed events, advances deadlines and cooldowns, and reads the drift monitor."""
    await _reconcile(memo, body, read_drift=True)


@kopf.on.event("batch", "v1", "jobs", labels={**_PART_OF, "app.kubernetes.io/component": "trainer"})
@kopf.on.event(
    "apps", "v1", "deployments", labels={**_PART_OF, "app.kubernetes.io/component": "serving"}
)
@kopf.on.event(GROUP, VERSION, "modelversions", annotations={APPROVAL_ANNOTATION: kopf.PRESENT})
async def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A trainer finished, a rollout progressed, or a version was approved: reconcile its owner."""
    if body.get("kind") == "Job" and not _finished(body):
        return  # a Job being created or running changes nothing the core decides on
    name = body.get("metadata", {}).get("labels", {}).get("bespoke.dev/customization")
    namespace = body.get("metadata", {}).get("namespace")
    if not name or not namespace:
        return
    path = resource_path(API_VERSION, _PLURAL, namespace, name)
    owner = await memo.runtime.api.get(path)
    if owner is not None and not owner["metadata"].get("deletionTimestamp"):
        await _reconcile(memo, owner, read_drift=False)


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    return bool(status.get("succeeded") or status.get("failed")) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


async def _reconcile(
    memo: kopf.Memo, body: Mapping[str, Any], *, read_drift: bool
) -> Outcome | None:
    metadata = body["metadata"]
    key = (metadata["namespace"], metadata["name"])
    lock = memo.locks.setdefault(key, asyncio.Lock())
    started = time.perf_counter()
    runtime: KubernetesRuntime = memo.runtime
    metrics: OperatorMetrics = memo.metrics
    current: Mapping[str, Any] = body
    async with lock:
        try:
            # Status is computed from the freshest object, never from a stale event body.
            fresh = await runtime.api.get(resource_path(API_VERSION, _PLURAL, *key))
            if fresh is None:
                return None
            current = fresh
            drift = await _drift_if_due(runtime, fresh) if read_drift else None
            outcome = await runtime.reconcile(fresh, drift)
            if _status_changed(fresh, outcome):
                await _write_status(runtime, key, outcome)
        except ApiError as exc:
            result = "temporary" if exc.retryable else "error"
            metrics.observe_reconcile(result, time.perf_counter() - started)
            if not exc.retryable:
                await _report_failure(runtime, key, current, exc)
            delay = 10 if exc.status == 429 else (2 if exc.retryable else 60)
            raise kopf.TemporaryError(str(exc), delay=delay) from exc
    metrics.observe_reconcile("success", time.perf_counter() - started)
    if outcome.decision is not None:
        metrics.observe_decision(*key, outcome.decision)
    metrics.observe_status(*key, outcome.status)
    return outcome


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
