"""The serving pod's desired shape, decided in the core; runtimes only apply it.

`Deploy` carries a `ServingShape`: which version and artifacts, the image (when the spec names
one), replicas, resources, the probes' timings, the secret it reads credentials from, the
locations it reads, and the `BESPOKE_*` environment `bespoke_serving.settings` reads. The
Kubernetes runtime renders it as a Deployment (+ Service, + PodDisruptionBudget when more than
one replica serves); the local runtime starts `bentoml serve` with its environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bespoke_operator.api import ModelCustomization, ModelCustomizationSpec, ModelVersionStatus
from bespoke_operator.api.serving import Serving
from bespoke_operator.reconcile.hashing import serving_hash

__all__ = [
    "PodResources",
    "Probes",
    "ServingShape",
    "serving_env",
    "serving_shape",
    "unservable",
]


@dataclass(frozen=True)
class PodResources:
    """Compute for one pod: `cpu` and `memory` as Kubernetes quantities, whole GPUs."""

    cpu: str
    memory: str
    gpus: int = 0
    #: The size limit of the pod's /tmp and its ephemeral-storage request.
    ephemeral_storage: str = "10Gi"


@dataclass(frozen=True)
class Probes:
    """The serving pod's health checks: readiness `/readyz`, liveness and start-up `/healthz`.

    Start-up allows `period_seconds * startup_failure_threshold` (10 minutes) to load a model.
    """

    period_seconds: int = 10
    timeout_seconds: int = 5
    liveness_initial_delay_seconds: int = 30
    liveness_failure_threshold: int = 6
    startup_failure_threshold: int = 60


@dataclass(frozen=True)
class ServingShape:
    """Everything that decides the serving pods of one customization."""

    customization: str
    namespace: str
    version: int
    artifact_uri: str
    #: None: the runtime's default serving image (the operator's own release).
    image: str | None
    replicas: int
    resources: PodResources
    #: The Secret whose keys become environment variables (`spec.serving.secretRef`), if any.
    secret_name: str | None
    #: Locations the pod reads (base model and artifacts): a runtime mounts what they need.
    reads: tuple[str, ...]
    env: dict[str, str] = field(hash=False)
    probes: Probes = Probes()
    #: `serving_hash` of the spec.serving this shape was made from: the Deployment records it,
    #: so the core knows whether what is available is what it asked for.
    serving_hash: str | None = None


def serving_shape(
    mc: ModelCustomization, *, version: int, artifact_uri: str, serving: Serving | None = None
) -> ServingShape:
    """The serving shape for `version` of `mc`, from its serving and monitoring spec.

    `serving`: another serving section than the spec's (the last available one, to roll a
    failed serving change back).
    """
    spec = mc.spec
    if serving is not None and serving is not spec.serving:
        spec = spec.model_copy(update={"serving": serving})
    serving = spec.serving
    customization = mc.metadata.name
    namespace = mc.metadata.namespace or "default"
    resources = serving.resources
    return ServingShape(
        customization=customization,
        namespace=namespace,
        version=version,
        artifact_uri=artifact_uri,
        image=serving.image,
        replicas=serving.replicas,
        resources=PodResources(
            cpu=resources.cpu,
            memory=resources.memory,
            gpus=resources.gpus,
            ephemeral_storage=resources.ephemeral_storage,
        ),
        # The serving pods' own Secret, never the trainer's (storage.secretRef).
        secret_name=serving.secret_ref.name if serving.secret_ref else None,
        reads=(spec.base_model.uri, artifact_uri),
        env=serving_env(
            spec,
            version=version,
            artifact_uri=artifact_uri,
            namespace=namespace,
            customization=customization,
        ),
        serving_hash=serving_hash(serving),
    )


def serving_env(
    spec: ModelCustomizationSpec,
    *,
    version: int,
    artifact_uri: str,
    namespace: str,
    customization: str,
) -> dict[str, str]:
    """The `BESPOKE_*` variables `bespoke_serving.settings` reads, for one served version."""
    serving, monitoring = spec.serving, spec.monitoring
    return {
        "BESPOKE_MODEL_URI": artifact_uri,
        "BESPOKE_VERSION": str(version),
        "BESPOKE_NAMESPACE": namespace,
        "BESPOKE_CUSTOMIZATION": customization,
        "BESPOKE_MERGE_ADAPTER": str(serving.merge_adapter).lower(),
        "BESPOKE_BATCHING": serving.batching.mode,
        "BESPOKE_MAX_BATCH_SIZE": str(serving.batching.max_batch_size),
        "BESPOKE_MAX_LATENCY_MS": str(serving.batching.max_latency_ms),
        "BESPOKE_MAX_TEXTS_PER_REQUEST": str(serving.limits.max_texts_per_request),
        "BESPOKE_MAX_CHARACTERS_PER_TEXT": str(serving.limits.max_characters_per_text),
        "BESPOKE_MAX_NEW_TOKENS": str(serving.limits.max_new_tokens),
        "BESPOKE_MAX_REQUEST_BYTES": str(serving.limits.max_request_bytes),
        "BESPOKE_CAPTURE_WINDOW_SIZE": str(monitoring.window_size),
        # The monitor waits for this many rows; never more than the window can hold.
        "BESPOKE_DRIFT_MIN_ROWS": str(min(monitoring.window_size, 100)),
        "BESPOKE_DRIFT_ENABLED": str(monitoring.enabled).lower(),
        "BESPOKE_DRIFT_INTERVAL_SECONDS": str(monitoring.interval_seconds),
        "BESPOKE_DRIFT_METHOD": monitoring.method,
        "BESPOKE_DRIFT_THRESHOLD": monitoring.threshold,
    }


def unservable(status: ModelVersionStatus) -> str | None:
    """Why a recorded version cannot be served even when pinned (gates aside), or None.

    The one rule for `serving.pinnedVersion` in the core and for `bespoke rollback`.
    """
    if status.artifact_uri is None:
        return "has no artifacts"
    if status.reason == "RolloutFailed":
        return "did not become available when it was rolled out"
    return None
