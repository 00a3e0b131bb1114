"""Every field a message names exists in the API, so a hint never sends a user to a dead end.

The walk reads every string constant (messages, f-string parts, rule messages, hints) in the
operator, trainer, serving and monitor sources, takes the camelCase field paths in them
(`dataset.sensitiveColumn`, `spec.serving.pinnedVersion`, `` `targetModules` ``) and resolves
each against the models of ModelCustomization and ModelVersion. Docstrings are not messages and
are left out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from bespoke_operator.api import ModelCustomization, ModelVersion

ROOT = Path(__file__).resolve().parents[4]
SOURCES = (
    "operator/bespoke_operator",
    "trainer/bespoke_trainer",
    "serving/bespoke_serving",
    "monitor/bespoke_monitor",
)

#: Names a message may use that are not API fields, each with why.
NOT_API_FIELDS = {
    # The trainer's own config document, written by the operator (a user never writes it).
    "warmStartUri",
    # Kubernetes' own fields and the CRD rule syntax, named in messages about them.
    "oldSelf",
    "fieldPath",
    "managedFields",
    "activeDeadlineSeconds",
}
#: File names look like dotted paths; these are the suffixes that make one a file.
FILE_SUFFIXES = {"json", "jsonl", "log", "yaml", "csv", "txt", "parquet", "safetensors", "bin"}

_PATH = re.compile(r"(?<![\w./:-])([a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)+)(?![\w/(-])")
_CAMEL_NAME = re.compile(r"`([a-z][a-z0-9]*[A-Z][a-zA-Z0-9]*)`")


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _every_model(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model not in seen:
        seen.add(model)
        for annotation in _fields(model).values():
            for inner in _models_in(annotation):
                _every_model(inner, seen)
    return seen


MODELS = _every_model(ModelVersion, _every_model(ModelCustomization, set()))
FIELD_NAMES = {name for model in MODELS for name in _fields(model)}


def _resolves(model: type[BaseModel], parts: list[str]) -> bool:
    annotation = _fields(model).get(parts[0])
    if annotation is None:
        return False
    rest = parts[1:]
    return not rest or any(_resolves(inner, rest) for inner in _models_in(annotation))


def field_path_exists(path: str) -> bool:
    """Whether `path` is a chain of fields starting at some model of the API."""
    return any(_resolves(model, path.split(".")) for model in MODELS)


def _messages(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        if isinstance(node.value, str):
            yield node.lineno, node.value


def named_fields(message: str) -> Iterator[str]:
    """The field paths and camelCase field names a message names."""
    for match in _PATH.finditer(message):
        path = match.group(1)
        first, last = path.split(".")[0], path.split(".")[-1]
        if (first in FIELD_NAMES or first in ("spec", "status")) and last not in FILE_SUFFIXES:
            yield path
    for match in _CAMEL_NAME.finditer(message):
        if match.group(1) not in NOT_API_FIELDS:
            yield match.group(1)


def _unknown_names() -> list[str]:
    found = []
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, message in _messages(path):
                found += [
                    f"{path.relative_to(ROOT)}:{line}: {name}"
                    for name in named_fields(message)
                    if not field_path_exists(name)
                ]
    return found


def test_every_field_a_message_names_exists_in_the_api() -> None:
    assert _unknown_names() == []


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("set `dataset.maxOverlapFraction`", ["dataset.maxOverlapFraction"]),
        ("`targetModules` must name", ["targetModules"]),
        ("see spec.serving.pinnedVersion.", ["spec.serving.pinnedVersion"]),
        ("wrote serving.json and model.safetensors", []),
        ("hf://org/name.v2 and bespoke.dev/approved", []),
    ],
)
def test_the_walk_finds_field_names_in_messages(message: str, names: list[str]) -> None:
    assert list(named_fields(message)) == names


def test_the_walk_tells_real_fields_from_made_up_ones() -> None:
    assert field_path_exists("spec.serving.pinnedVersion")
    assert field_path_exists("dataset.columns.label")
    assert field_path_exists("columns.label")
    assert field_path_exists("targetModules")
    assert not field_path_exists("dataset.maxOverlapFraction")
    assert not field_path_exists("dataset.minExamplesPerClass")
