"""The operator → serving contract: the environment the operator sets is what serving reads."""

from __future__ import annotations

import pytest

from bespoke_operator.api import ModelCustomization
from bespoke_operator.reconcile.serving_env import serving_env
from bespoke_serving.settings import ServingSettings

from .world import customization


@pytest.mark.parametrize("window", [40, 100, 5000])
def test_serving_reads_every_variable_the_operator_sets(window: int) -> None:
    spec = ModelCustomization.model_validate(
        customization(monitoring__windowSize=window, serving__limits={"maxTextsPerRequest": 7})
    ).spec
    env = serving_env(
        spec, version=3, artifact_uri="/data/v3", namespace="ml", customization="sentiment"
    )
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
    spec = ModelCustomization.model_validate(customization(serving__batching=batching)).spec
    env = serving_env(
        spec, version=1, artifact_uri="/data/v1", namespace="ml", customization="sentiment"
    )
    settings = ServingSettings.from_env(env)
    assert (settings.batching, settings.max_batch_size, settings.max_latency_ms) == (mode, 8, 20)
