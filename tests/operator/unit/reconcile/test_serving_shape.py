"""The serving shape the core decides, and the operator → serving contract (its environment)."""

from __future__ import annotations

import pytest

from bespoke_operator.api import ModelCustomization
from bespoke_operator.reconcile.serving import PodResources, serving_shape
from bespoke_serving.settings import ServingSettings

from .world import customization


@pytest.mark.parametrize("window", [40, 100, 5000])
def test_serving_reads_every_variable_the_operator_sets(window: int) -> None:
    mc = ModelCustomization.model_validate(
        customization(monitoring__windowSize=window, serving__limits={"maxTextsPerRequest": 7})
    )
    env = serving_shape(mc, version=3, artifact_uri="/data/v3").env
    settings = ServingSettings.from_env(env)
    assert settings.version == 3
    assert settings.model_uri == "/data/v3"
    assert settings.max_texts_per_request == 7
    assert settings.capture_window_size == window
    # The drift monitor must be able to start with the rows the window can hold.
    assert settings.drift_min_rows <= settings.capture_window_size
    unknown = {
        k for k in env if k.removeprefix("BESPOKE_").lower() not in ServingSettings.model_fields
    }
    assert unknown == set()


@pytest.mark.parametrize("mode", ["greedy", "adaptive"])
def test_the_batching_mode_and_its_bounds_reach_serving(mode: str) -> None:
    batching = {"mode": mode, "maxBatchSize": 8, "maxLatencyMs": 20}
    mc = ModelCustomization.model_validate(customization(serving__batching=batching))
    settings = ServingSettings.from_env(serving_shape(mc, version=1, artifact_uri="/v1").env)
    assert (settings.batching, settings.max_batch_size, settings.max_latency_ms) == (mode, 8, 20)


def test_the_shape_carries_the_serving_spec_a_runtime_applies() -> None:
    serving = {
        "replicas": 3,
        "image": "registry.example/serving:1",
        "resources": {"cpu": "500m", "memory": "3Gi", "gpus": 1},
    }
    storage = {"uri": "s3://bucket/root", "secretRef": {"name": "store-keys"}}
    mc = ModelCustomization.model_validate(customization(serving=serving, storage=storage))
    shape = serving_shape(mc, version=2, artifact_uri="s3://bucket/root/versions/v2")
    assert (shape.customization, shape.namespace, shape.version) == (
        mc.metadata.name,
        mc.metadata.namespace,
        2,
    )
    assert (shape.image, shape.replicas) == ("registry.example/serving:1", 3)
    assert shape.resources == PodResources(cpu="500m", memory="3Gi", gpus=1)
    # The trainer's storage Secret stays with the trainer: serving gets none by default.
    assert shape.secret_name is None
    assert shape.reads == (mc.spec.base_model.uri, "s3://bucket/root/versions/v2")


def test_serving_reads_with_its_own_secret_only() -> None:
    serving = {"secretRef": {"name": "read-only-keys"}}
    storage = {"uri": "s3://bucket/root", "secretRef": {"name": "store-keys"}}
    mc = ModelCustomization.model_validate(customization(serving=serving, storage=storage))
    assert serving_shape(mc, version=1, artifact_uri="/v1").secret_name == "read-only-keys"


def test_without_an_image_in_the_spec_the_runtime_default_applies() -> None:
    mc = ModelCustomization.model_validate(customization())
    assert serving_shape(mc, version=1, artifact_uri="/v1").image is None
