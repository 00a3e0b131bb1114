"""Maps a version's spec snapshot to the trainer's JSON config (the operator → trainer contract)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from bespoke_operator.api import ModelVersionSpec
from bespoke_operator.reconcile.hashing import OPERATOR_ONLY_TRAINING_FIELDS

__all__ = ["TERMINATION_LOG", "trainer_config"]

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
