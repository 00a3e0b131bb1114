"""kopf wiring: every trigger hands the object to the `Controller`, which does the rest.

Run with `kopf run -m bespoke_operator.handlers --all-namespaces` (or `--namespace X`); settings
come from the environment at start-up (`bespoke_operator.settings.OperatorSettings`). Triggers:
every event of a ModelCustomization (the controller reconciles only a first sight and a new
generation), and events of the children (finished trainer Jobs, serving Deployments, approval
annotations on ModelVersions); the controller's resync queue runs everything no event announces.

A kopf event handler rather than kopf's create/update handlers: those store a diff-base
annotation (a copy of the spec) after every change, which costs a patch, another watch event
and two deep copies of the body per change, and retry through kopf's own machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Mapping
from typing import Any, Final

import kopf
from prometheus_client import start_http_server

from bespoke_operator.constants import (
    APPROVAL_ANNOTATION,
    CUSTOMIZATIONS,
    DOMAIN,
    FINALIZER,
    GROUP,
    SERVING_DEPLOYMENTS,
    TRAINER_JOBS,
    VERSION,
    VERSIONS,
)
from bespoke_operator.kopf_storage import (
    LeanAnnotationsDiffBaseStorage,
    LeanAnnotationsProgressStorage,
)
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.runtimes.kubernetes.client import KubeApi
from bespoke_operator.runtimes.kubernetes.controller import Controller
from bespoke_operator.runtimes.kubernetes.leader import lead
from bespoke_operator.runtimes.kubernetes.objects import Images
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime
from bespoke_operator.settings import OperatorSettings

__all__ = ["apply_settings"]

# Young-generation collections every 10,000 allocations rather than Python's 700.
_GC_THRESHOLDS: Final = (10_000, 10, 10)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's settings; the controller and its resync loop in the memo."""
    apply_settings(settings)
    ours = OperatorSettings.from_env()
    images = Images(trainer=ours.trainer_image, serving=ours.serving_image)
    api = await KubeApi.connect(ours.kubeconfig)
    # With leader election on, a standby waits here: kopf watches nothing before startup ends.
    memo.leader = await lead(api, ours)
    runtime = KubernetesRuntime(api, images)
    memo.controller = Controller(runtime, OperatorMetrics(), ours)
    memo.resync = asyncio.create_task(memo.controller.queue.run_forever(), name="bespoke-resync")
    _tune_garbage_collector()
    if ours.metrics_port:
        start_http_server(ours.metrics_port, registry=memo.controller.metrics.registry)


def apply_settings(settings: kopf.OperatorSettings) -> None:
    """Our own annotation keys, watch timeouts and selectors, and event posting."""
    # No handler needs a finalizer any more (children go by owner references); naming the one
    # older releases added lets kopf find and remove it from existing customizations.
    settings.persistence.finalizer = FINALIZER
    # kopf builds every watched object's essence on every event, with or without change handlers.
    settings.persistence.progress_storage = LeanAnnotationsProgressStorage(prefix=DOMAIN)
    settings.persistence.diffbase_storage = LeanAnnotationsDiffBaseStorage(
        prefix=DOMAIN, key="last-handled-configuration"
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
    if memo.leader is not None:
        await memo.leader.stop()
    await memo.controller.runtime.api.close()


@kopf.on.event(GROUP, VERSION, CUSTOMIZATIONS)
async def customization_changed(
    body: kopf.Body, event: kopf.RawEvent, memo: kopf.Memo, **_: Any
) -> None:
    """A customization's watch event: new to this operator or a new generation is reconciled."""
    await memo.controller.customization_event(body, event.get("type"))


@kopf.on.event("batch", "v1", "jobs", labels=TRAINER_JOBS)
@kopf.on.event("apps", "v1", "deployments", labels=SERVING_DEPLOYMENTS)
@kopf.on.event(GROUP, VERSION, VERSIONS, annotations={APPROVAL_ANNOTATION: kopf.PRESENT})
async def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A trainer finished, a rollout progressed, or a version was approved: reconcile its owner."""
    await memo.controller.child_event(body)


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
