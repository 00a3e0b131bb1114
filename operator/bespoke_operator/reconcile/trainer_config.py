"""A version's trainer, decided from its spec snapshot: the JSON config the trainer reads (the
operator → trainer contract) and the shape of the pod that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from bespoke_operator.api import ModelVersionSpec
from bespoke_operator.reconcile.hashing import OPERATOR_ONLY_TRAINING_FIELDS
from bespoke_operator.reconcile.serving import PodResources

__all__ = ["TERMINATION_LOG", "TrainerShape", "trainer_config", "trainer_shape"]

TERMINATION_LOG: Final = "/dev/termination-log"


def trainer_config(
    version: ModelVersionSpec,
    *,
    warm_start_uri: str | None,
    champion_uri: str | None,
    termination_log_path: str = TERMINATION_LOG,
) -> dict[str, Any]:
    """The JSON document `python -m bespoke_trainer --config` reads for this version.

    Drift-triggered versions also train on `monitoring.onDrift.dataset` (the labelled recent
    data); `champion_uri` is the production version the trainer evaluates on the same held-out
    set, so the champion delta compares like with like.
    """
    spec = version.snapshot
    dataset = _json(spec.dataset)
    drift_data = spec.monitoring.on_drift.dataset
    if version.trigger == "Drift" and drift_data is not None:
        dataset["extraTrain"] = [_json(drift_data)]
    training = _json(spec.training, exclude=OPERATOR_ONLY_TRAINING_FIELDS)
    # warmStart asks for the production adapter; without a production version it starts fresh.
    training["warmStart"] = warm_start_uri is not None
    config: dict[str, Any] = {
        "version": version.version,
        "task": spec.task,
        "baseModel": _json(spec.base_model),
        "dataset": dataset,
        "method": _json(spec.method),
        "training": training,
        "evaluation": {"metrics": list(spec.evaluation.metrics)},
        "output": {"uri": version.artifact_uri, "terminationLogPath": termination_log_path},
        "trainingHash": version.training_hash,
    }
    if warm_start_uri is not None:
        config["warmStartUri"] = warm_start_uri
    if champion_uri is not None:
        config["championUri"] = champion_uri
    return config


def _json(model: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=set(exclude))


@dataclass(frozen=True)
class TrainerShape:
    """Everything that decides a version's trainer pods (the Job's attempts share it)."""

    #: None: the runtime's default trainer image (the operator's own release).
    image: str | None
    resources: PodResources
    node_selector: dict[str, str]
    #: Kubernetes tolerations, as the pod spec writes them.
    tolerations: tuple[dict[str, Any], ...]
    priority_class_name: str | None
    #: The Kueue queue the Job is submitted to, if any.
    queue_name: str | None
    #: The Job's `activeDeadlineSeconds`: the trainer's only deadline.
    deadline_seconds: int
    #: The Secret whose keys become environment variables (storage credentials), if any.
    secret_name: str | None
    #: Every location the trainer reads or writes: a runtime mounts what they need.
    reads: tuple[str, ...]


def trainer_shape(version: ModelVersionSpec) -> TrainerShape:
    """The trainer pod's shape for a version, from the spec it was created from."""
    spec = version.snapshot
    training = spec.training
    resources = training.resources
    return TrainerShape(
        image=training.image,
        resources=PodResources(
            cpu=resources.cpu,
            memory=resources.memory,
            gpus=resources.gpus,
            ephemeral_storage=resources.ephemeral_storage,
        ),
        node_selector=dict(training.node_selector or {}),
        tolerations=tuple(
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in training.tolerations or ()
        ),
        priority_class_name=training.priority_class_name,
        queue_name=training.queue_name,
        deadline_seconds=training.deadline_seconds,
        secret_name=spec.storage.secret_ref.name if spec.storage.secret_ref else None,
        reads=tuple(uri for _, uri in spec.locations()),
    )
