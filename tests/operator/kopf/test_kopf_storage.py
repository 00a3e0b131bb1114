"""The lean kopf storages give kopf exactly what its own storages give, without the deep copies."""

from __future__ import annotations

import copy
import json
from typing import Any

import kopf
import pytest

from bespoke_operator.kopf_storage import (
    LeanAnnotationsDiffBaseStorage,
    LeanAnnotationsProgressStorage,
)


def _body(**extra_annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "bespoke.dev/v1alpha1",
        "kind": "ModelCustomization",
        "metadata": {
            "name": "tickets",
            "namespace": "ml",
            "uid": "0b5c",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"team": "support"},
            "annotations": {
                "bespoke.dev/last-handled-configuration": '{"spec": {"task": "x"}}',
                "bespoke.dev/kopf-managed": "yes",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "owner": "ml-platform",
                **extra_annotations,
            },
            "managedFields": [{"manager": "bespoke", "fieldsV1": {"f:status": {"f:x": {}}}}],
            "finalizers": ["bespoke.dev/finalizer"],
        },
        "spec": {
            "task": "text-classification",
            "training": {"method": "lora", "lora": {"rank": 16, "targetModules": ["query"]}},
            "gates": [{"metric": "accuracy", "min": "0.8"}],
        },
        "status": {"phase": "Training", "conditions": [{"type": "Ready", "status": "False"}]},
    }


@pytest.mark.parametrize(
    "annotations",
    [{}, {"bespoke.dev/approve": "v2"}, {"other.dev/x": "1"}],
    ids=["plain", "own-prefix", "foreign"],
)
def test_diffbase_essence_equals_kopfs_own(annotations: dict[str, str]) -> None:
    body = kopf.Body(_body(**annotations))
    ours = LeanAnnotationsDiffBaseStorage(prefix="bespoke.dev", key="last-handled-configuration")
    theirs = kopf.AnnotationsDiffBaseStorage(prefix="bespoke.dev", key="last-handled-configuration")
    assert ours.build(body=body) == theirs.build(body=body)
    assert "status" not in ours.build(body=body)


def test_diffbase_essence_does_not_alias_the_body() -> None:
    raw = _body()
    essence = LeanAnnotationsDiffBaseStorage(prefix="bespoke.dev").build(body=kopf.Body(raw))
    essence["spec"]["training"]["lora"]["rank"] = 99
    assert raw["spec"]["training"]["lora"]["rank"] == 16


def test_progress_clear_equals_kopfs_own_and_leaves_the_input_alone() -> None:
    body = kopf.Body(_body(**{"bespoke.dev/create": '{"started": "now"}'}))
    essence = kopf.AnnotationsDiffBaseStorage(prefix="other.dev").build(body=body)
    before = copy.deepcopy(essence)
    ours = LeanAnnotationsProgressStorage(prefix="bespoke.dev").clear(essence=essence)
    theirs = kopf.AnnotationsProgressStorage(prefix="bespoke.dev").clear(essence=essence)
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    assert essence == before
    assert not any(key.startswith("bespoke.dev/") for key in ours["metadata"]["annotations"])


def test_progress_clear_drops_stanzas_left_empty() -> None:
    essence = kopf.BodyEssence(
        spec={"task": "x"},
        metadata={"annotations": {"bespoke.dev/create": "{}"}, "labels": {}},
    )
    cleared = LeanAnnotationsProgressStorage(prefix="bespoke.dev").clear(essence=essence)
    assert cleared == kopf.AnnotationsProgressStorage(prefix="bespoke.dev").clear(essence=essence)
    assert cleared == {"spec": {"task": "x"}}
