"""Operator → trainer: every config the core writes is one the trainer's `TrainerConfig` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bespoke_operator.api import ModelCustomization
from bespoke_operator.reconcile import CreateVersion, Observed, StartTrainer, decide
from bespoke_operator.reconcile.hashing import OPERATOR_ONLY_TRAINING_FIELDS
from bespoke_operator.reconcile.trainer_config import trainer_config
from bespoke_trainer.config import TrainerConfig, load_config
from tests.operator.unit.api.fixtures import example_files
from tests.operator.unit.reconcile.world import START


def _first_config(path: Path) -> tuple[ModelCustomization, dict[str, object]]:
    document = yaml.safe_load(path.read_text())
    document["metadata"]["namespace"] = "ml"
    mc = ModelCustomization.model_validate(document)
    decision = decide(mc, Observed(now=START))
    [start] = [a for a in decision.actions if isinstance(a, StartTrainer)]
    return mc, start.config


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_the_trainer_accepts_the_config_the_core_writes_for_every_example(
    path: Path, tmp_path: Path
) -> None:
    mc, config = _first_config(path)
    # Through a file, as the trainer reads it from its mounted ConfigMap.
    written = tmp_path / "config.json"
    written.write_text(json.dumps(config))
    parsed = load_config(written)
    assert parsed.task == mc.spec.task
    assert parsed.training_hash == config["trainingHash"]


def test_warm_start_champion_and_drift_data_reach_the_trainer() -> None:
    path = next(p for p in example_files() if p.name == "text-classification-lora.yaml")
    document = yaml.safe_load(path.read_text())
    document["metadata"]["namespace"] = "ml"
    document["spec"]["monitoring"]["onDrift"] = {
        "action": "retrain",
        "dataset": {"uri": "pvc://data/recent.jsonl"},
    }
    mc = ModelCustomization.model_validate(document)
    decision = decide(mc, Observed(now=START))
    [created] = [a for a in decision.actions if isinstance(a, CreateVersion)]
    drift_version = created.version.spec.model_copy(update={"trigger": "Drift"})
    config = trainer_config(
        drift_version, warm_start_uri="pvc://a/versions/v1", champion_uri="pvc://a/versions/v1"
    )
    parsed = TrainerConfig.model_validate(config)
    assert parsed.warm_start_uri == "pvc://a/versions/v1"
    assert parsed.champion_uri == "pvc://a/versions/v1"
    assert [d.uri for d in parsed.dataset.extra_train] == ["pvc://data/recent.jsonl"]


def test_no_operator_only_field_reaches_the_trainer() -> None:
    path = next(p for p in example_files() if p.name == "text-classification-lora.yaml")
    _, config = _first_config(path)
    training = config["training"]
    assert isinstance(training, dict)
    camel = {
        "".join(w.title() if i else w for i, w in enumerate(f.split("_")))
        for f in OPERATOR_ONLY_TRAINING_FIELDS
    }
    assert camel.isdisjoint(training)
