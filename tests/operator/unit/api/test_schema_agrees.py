"""The generated openAPIV3Schema (with its CEL rules) and the pydantic models agree."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bespoke_operator import kube_yaml
from bespoke_operator.api import ModelCustomization
from bespoke_operator.api.crd import KINDS, openapi_schema

from .fixtures import FIXTURES, InvalidFixture, example_files, invalid_fixtures
from .openapi import apply_defaults, schema_errors

SCHEMA = openapi_schema(KINDS[0])


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_examples_pass_the_generated_schema(path: Any) -> None:
    assert schema_errors(yaml.safe_load(path.read_text()), SCHEMA) == []


@pytest.mark.parametrize(
    "fixture", [f for f in invalid_fixtures() if f.server], ids=lambda f: f.path.stem
)
def test_invalid_fixtures_fail_the_generated_schema_for_the_same_reason(
    fixture: InvalidFixture,
) -> None:
    # Read as kubectl reads it (`2e-3` is a number), since that is what reaches the server.
    document = next(kube_yaml.load_all(fixture.path.read_text()))
    errors = schema_errors(document, SCHEMA)
    assert any(fixture.expect in e for e in errors), errors


def test_task_change_is_rejected_as_a_transition() -> None:
    before = yaml.safe_load((FIXTURES / "updates/task-change/before.yaml").read_text())
    after_path = FIXTURES / "updates/task-change/after.yaml"
    after = yaml.safe_load(after_path.read_text())
    assert schema_errors(after, SCHEMA) == []  # valid as a new object
    errors = schema_errors(after, SCHEMA, old=before)
    assert any(InvalidFixture.read(after_path).expect in e for e in errors)


def test_server_defaults_equal_model_defaults() -> None:
    """What the API server stores after defaulting is what the models assume."""
    for path in example_files():
        document = yaml.safe_load(path.read_text())
        defaulted = apply_defaults(document, SCHEMA)
        model = ModelCustomization.model_validate(document)
        assert defaulted["spec"] == model.spec.model_dump(by_alias=True, exclude_none=True)


_BASE = yaml.safe_load((FIXTURES / "updates/task-change/before.yaml").read_text())
_METRICS = st.sampled_from(["accuracy", "macroF1", "evalLoss", "perplexity", "tokenF1"])
# Mostly valid, so that enough drawn specs are valid as a whole and both answers are exercised;
# 0.45 + 0.45 meets the split rule's bound (0.9) exactly.
_FRACTION = st.sampled_from(["0.1", "0.05", "0.3", "0.1", "0.45", "0.1", "0", "1", "1.5"])


def _sometimes(draw: st.DrawFn, usual: str, values: st.SearchStrategy[str]) -> str:
    """`usual` three times in four, else a drawn value: enough whole specs stay valid."""
    return draw(values) if draw(st.integers(0, 3)) == 0 else usual


# Locations of every scheme, with and without `..` segments (allowed only in relative paths).
_LOCATIONS = st.sampled_from(
    [
        "pvc://models/m",
        "s3://bucket/m",
        "file:///models/m",
        "pvc://claim/../other",
        "s3://bucket/a/..",
        "/abs/../m",
        "../relative/m",
        "hf://org/..",
    ]
)


@st.composite
def _columns(draw: st.DrawFn) -> dict[str, str]:
    names = ["text", "label", "prompt", "response"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    return {name: draw(st.sampled_from([name, "q"])) for name in chosen}


@st.composite
def _gates(draw: st.DrawFn) -> dict[str, Any]:
    gate = {"metric": draw(_METRICS), "min": draw(st.sampled_from(["0.1", "0.9", "1", "85"]))}
    if draw(st.sampled_from([False, False, True])):
        del gate["min"]
    if draw(st.booleans()):
        gate["max"] = draw(st.sampled_from(["0.9", "1", "50", "0.05"]))
    return gate


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(_BASE)
    spec = doc["spec"]
    spec["task"] = draw(st.sampled_from(["text-classification", "causal-lm"]))
    spec["method"] = {"type": draw(st.sampled_from(["lora", "qlora", "full"]))}
    spec["training"] = {
        "resources": {"gpus": draw(st.integers(0, 2))},
        "mitigateBias": draw(st.booleans()),
    }
    if draw(st.booleans()):
        spec["training"]["earlyStopping"] = {"metric": draw(_METRICS)}
    spec["baseModel"]["uri"] = _sometimes(draw, spec["baseModel"]["uri"], _LOCATIONS)
    if draw(st.booleans()):
        spec["baseModel"]["trustRemoteCode"] = True
    if draw(st.booleans()):
        spec["baseModel"]["revision"] = "abc123"
    spec["storage"]["uri"] = _sometimes(draw, spec["storage"]["uri"], _LOCATIONS)
    spec["dataset"]["split"] = {
        "validationFraction": _sometimes(draw, "0.1", _FRACTION),
        "testFraction": _sometimes(draw, "0.1", _FRACTION),
    }
    if draw(st.booleans()):
        spec["dataset"]["sensitiveColumn"] = draw(st.sampled_from(["group", "group", "label", "q"]))
    if draw(st.booleans()):
        spec["dataset"]["columns"] = draw(_columns())
    if draw(st.booleans()):
        probability = _sometimes(draw, "0.1", _FRACTION)
        spec["dataset"]["augmentation"] = {"enabled": True, "probability": probability}
    spec["method"]["lora"] = {"dropout": _sometimes(draw, "0.05", _FRACTION)}
    if draw(st.booleans()):
        spec["method"]["lora"]["targetModules"] = draw(st.sampled_from([[], ["q_proj"]]))
    spec["training"]["warmupRatio"] = _sometimes(draw, "0.06", _FRACTION)
    spec["training"]["learningRate"] = _sometimes(draw, "2e-4", st.sampled_from(["1", "0"]))
    spec["monitoring"] = {"threshold": _sometimes(draw, "0.5", _FRACTION)}
    evaluation: dict[str, Any] = {"gates": draw(st.lists(_gates(), max_size=3))}
    if draw(st.booleans()):
        evaluation["metrics"] = draw(st.lists(_METRICS, max_size=2))
    if draw(st.booleans()):
        evaluation["championDelta"] = {"metric": draw(_METRICS)}
    if draw(st.booleans()):
        evaluation["fairness"] = {"minWorstGroupAccuracy": _sometimes(draw, "0.7", _FRACTION)}
    spec["evaluation"] = evaluation
    if draw(st.booleans()):
        spec["serving"] = {"pinnedVersion": draw(st.integers(-1, 3))}
    return doc


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_specs())
def test_models_and_schema_accept_exactly_the_same_specs(document: dict[str, Any]) -> None:
    try:
        ModelCustomization.model_validate(document)
        model_ok = True
    except ValidationError:
        model_ok = False
    errors = schema_errors(document, SCHEMA)
    assert model_ok == (errors == []), errors


def test_a_partial_serving_resources_block_keeps_the_serving_defaults() -> None:
    document = copy.deepcopy(_BASE)
    document["spec"]["serving"] = {"resources": {"gpus": 1}}
    defaulted = apply_defaults(document, SCHEMA)["spec"]["serving"]["resources"]
    model = ModelCustomization.model_validate(document).spec.serving.resources
    expected = {"gpus": 1, "cpu": "1", "memory": "2Gi", "ephemeralStorage": "10Gi"}
    assert defaulted == model.model_dump(by_alias=True) == expected
