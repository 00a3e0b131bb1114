"""The generated CRDs: current, structural, valid Kubernetes objects, and what kubectl shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bespoke_operator.api.crd import KINDS, CrdKind, crd, openapi_schema
from bespoke_operator.cli import manifests

KUBERNETES_VERSION = "1.34"
_FORBIDDEN = {"$ref", "title", "anyOf", "allOf", "oneOf", "not", "const", "$defs"}


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[{key}]")


def test_committed_generated_files_are_current(repo_root: Path) -> None:
    assert manifests.stale(repo_root) == [], "run `make manifests` and commit the result"


def test_stale_files_are_detected(tmp_path: Path) -> None:
    manifests.write_all(tmp_path)
    assert manifests.stale(tmp_path) == []
    target = tmp_path / "crds" / "bespoke.dev_modelversions.yaml"
    target.write_text(target.read_text().replace("shortNames", "shortNamez"))
    assert manifests.stale(tmp_path) == [Path("crds/bespoke.dev_modelversions.yaml")]


def test_chart_copy_is_identical_to_crds(repo_root: Path) -> None:
    for path in (repo_root / "crds").glob("*.yaml"):
        assert (repo_root / "charts/bespoke/crds" / path.name).read_text() == path.read_text()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    for path, node in _nodes(openapi_schema(kind)):
        assert not (_FORBIDDEN & node.keys()), f"{path} has {_FORBIDDEN & node.keys()}"
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_is_described_and_bounded(kind: Any) -> None:
    schema = openapi_schema(kind)
    for section in ("spec", "status"):
        for path, node in _nodes(schema["properties"][section], section):
            if path.endswith("]"):
                continue  # list items and map values are described by their field
            assert node.get("description"), f"{path} has no description (kubectl explain)"
            # Unbounded strings and lists make CEL cost estimates fail on the server.
            if node["type"] == "string" and "enum" not in node and "format" not in node:
                assert "maxLength" in node, f"{path} has no maxLength"
            if node["type"] == "array":
                assert "maxItems" in node, f"{path} has no maxItems"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_is_a_valid_kubernetes_object(kind: Any) -> None:
    kubernetes_validate.validate(crd(kind), KUBERNETES_VERSION, strict=True)


def test_status_subresource_names_and_printer_columns() -> None:
    mc, mv = (crd(k) for k in KINDS)
    for definition in (mc, mv):
        version = definition["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert definition["spec"]["names"]["categories"] == ["bespoke"]
    assert mc["spec"]["names"]["shortNames"] == ["mc"]
    assert mv["spec"]["names"]["shortNames"] == ["mv"]
    columns = {
        definition["spec"]["names"]["kind"]: {
            c["name"]: c for c in definition["spec"]["versions"][0]["additionalPrinterColumns"]
        }
        for definition in (mc, mv)
    }
    assert list(columns["ModelCustomization"]) == [
        "Production",
        "Candidate",
        "Ready",
        "Phase",
        "Metric",
        "Drift",
        "Age",
        "Message",
    ]
    assert list(columns["ModelVersion"]) == [
        "Customization",
        "Version",
        "Ready",
        "Phase",
        "Reason",
        "Metric",
        "Trigger",
        "Age",
        "Message",
    ]
    ready = '.status.conditions[?(@.type=="Ready")]'
    for kind in columns.values():
        assert kind["Ready"]["jsonPath"] == f"{ready}.status"
        assert kind["Message"]["jsonPath"] == f"{ready}.message"
        assert kind["Message"].get("priority", 0) == 0  # shown without -o wide
    assert columns["ModelCustomization"]["Candidate"]["jsonPath"] == ".status.candidateVersion"
    assert columns["ModelVersion"]["Reason"]["jsonPath"] == ".status.reason"


def test_cross_field_rules_are_in_the_schema_with_their_field_paths() -> None:
    spec = openapi_schema(KINDS[0])["properties"]["spec"]
    paths = {rule.get("fieldPath") for rule in spec["x-kubernetes-validations"]}
    assert {".training.resources.gpus", ".evaluation.gates"} <= paths
    task_rules = spec["properties"]["task"]["x-kubernetes-validations"]
    assert task_rules[0]["rule"] == "self == oldSelf"


def test_generated_yaml_round_trips(repo_root: Path) -> None:
    for kind in KINDS:
        text = (repo_root / "crds" / f"bespoke.dev_{kind.plural}.yaml").read_text()
        assert yaml.safe_load(text) == crd(kind)


def _rules_and_patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("x-kubernetes-validations", "pattern"):
                yield key
            yield from _rules_and_patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _rules_and_patterns(item)


def test_a_versions_snapshot_is_recorded_history_that_no_later_rule_can_invalidate() -> None:
    customization, version = (openapi_schema(kind) for kind in KINDS)
    snapshot = version["properties"]["spec"]["properties"]["snapshot"]
    assert list(_rules_and_patterns(snapshot)) == []
    assert list(_rules_and_patterns(customization["properties"]["spec"]))  # the intent is judged
    # Types, defaults and descriptions are kept, so `kubectl explain` still documents it.
    lora = snapshot["properties"]["method"]["properties"]["lora"]["properties"]
    assert lora["dropout"]["type"] == "string"
    assert lora["dropout"]["default"] == "0.05"


def test_a_versions_spec_carries_the_immutability_rule_declared_on_the_field() -> None:
    """Declared on `ModelVersion.spec`, not in `ModelVersionSpec`: it used to be lost."""
    from bespoke_operator.api.version import SPEC_IMMUTABLE

    customization, version = (openapi_schema(kind) for kind in KINDS)
    assert SPEC_IMMUTABLE in version["properties"]["spec"]["x-kubernetes-validations"]
    rules = customization["properties"]["spec"].get("x-kubernetes-validations", [])
    assert SPEC_IMMUTABLE not in rules


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_status_defaults_to_an_object_so_health_checks_can_test_its_fields(kind: CrdKind) -> None:
    status = openapi_schema(kind)["properties"]["status"]
    assert status["default"] == {}
    assert status["properties"]["observedGeneration"]["default"] == 0
