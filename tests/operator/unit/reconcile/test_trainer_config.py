"""The spec → trainer config mapping (the operator → trainer contract)."""

from __future__ import annotations

from bespoke_operator.api import ModelCustomization
from bespoke_operator.reconcile import StartTrainer

from .test_decide import _drift, promoted_world
from .world import InMemoryWorld, actions_of, customization


def _config(world: InMemoryWorld) -> dict[str, object]:
    starts = actions_of(world.last, StartTrainer)  # type: ignore[arg-type]
    assert len(starts) == 1
    return starts[0].config


def test_first_version_config_carries_the_spec_and_no_champion() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    config = _config(world)
    spec = ModelCustomization.model_validate(customization()).spec
    assert config["version"] == 1
    assert config["task"] == "text-classification"
    assert config["baseModel"] == {
        "uri": spec.base_model.uri,
        "revision": spec.base_model.revision,
        "trustRemoteCode": False,
    }
    assert config["output"] == {
        "uri": "pvc://bespoke-artifacts/sentiment/versions/v1",
        "terminationLogPath": "/dev/termination-log",
    }
    # So the trainer tells this version's artifacts from an earlier namesake's at the same place.
    assert config["trainingHash"] == world.versions[1].spec.training_hash
    training = config["training"]
    assert isinstance(training, dict)
    assert training["learningRate"] == "5e-4"
    assert "resources" not in training  # pod placement is the operator's business
    assert "championUri" not in config
    assert "warmStartUri" not in config
    assert training["warmStart"] is False  # nothing to start from yet


def test_later_versions_are_evaluated_against_production_and_warm_started() -> None:
    world = promoted_world(training__warmStart=True)
    world.document["spec"]["training"]["epochs"] = 8
    world.reconcile()
    config = _config(world)
    assert config["championUri"] == "pvc://bespoke-artifacts/sentiment/versions/v1"
    assert config["warmStartUri"] == "pvc://bespoke-artifacts/sentiment/versions/v1"
    training = config["training"]
    assert isinstance(training, dict)
    assert training["warmStart"] is True


def test_drift_versions_add_the_drift_dataset_to_training() -> None:
    drift_data = {"uri": "pvc://data/recent.jsonl"}
    world = promoted_world(
        monitoring__onDrift={"action": "retrain", "cooldownSeconds": 0, "dataset": drift_data}
    )
    _drift(world, 0.9)
    world.reconcile()
    config = _config(world)
    dataset = config["dataset"]
    assert isinstance(dataset, dict)
    assert dataset["extraTrain"] == [drift_data]


def test_the_trainer_shape_carries_where_and_how_long_the_trainer_runs() -> None:
    training = {
        "resources": {"gpus": 2, "cpu": "8", "memory": "48Gi"},
        "queueName": "team-a",
        "nodeSelector": {"gpu": "h100"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "batch-low",
        "image": "registry.example/trainer:2",
        "deadlineSeconds": 7200,
    }
    world = InMemoryWorld(customization(training=training))
    world.reconcile()
    [start] = actions_of(world.last, StartTrainer)  # type: ignore[arg-type]
    shape = start.shape
    assert shape is not None
    assert (shape.resources.gpus, shape.resources.cpu, shape.resources.memory) == (2, "8", "48Gi")
    assert (shape.queue_name, shape.priority_class_name) == ("team-a", "batch-low")
    assert shape.node_selector == {"gpu": "h100"}
    assert shape.tolerations == ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},)
    assert (shape.image, shape.deadline_seconds) == ("registry.example/trainer:2", 7200)
    assert start.spec is not None
    assert shape.reads == tuple(uri for _, uri in start.spec.snapshot.locations())
