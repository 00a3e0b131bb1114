"""Checks resource files against the API models and says, for each problem, what and how to fix."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bespoke_operator import kube_yaml
from bespoke_operator.api import API_VERSION, ModelCustomization, ModelVersion
from bespoke_operator.api._base import FORMAT_HINTS
from bespoke_operator.api.rules import RULE_ERROR_TYPE
from bespoke_operator.errors import ResourceValidationError

__all__ = [
    "KINDS",
    "Problem",
    "Resource",
    "load_file",
    "validate_text",
]

Resource = ModelCustomization | ModelVersion

KINDS: Final[dict[str, type[ModelCustomization] | type[ModelVersion]]] = {
    "ModelCustomization": ModelCustomization,
    "ModelVersion": ModelVersion,
}


@dataclass(frozen=True)
class Problem:
    """One problem in a file, located by field path."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.source}: {where}{self.message}"


def load_file(path: Path) -> list[Resource]:
    """Parses every resource in a file; raises `ResourceValidationError` with all its problems."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResourceValidationError(
            [Problem(str(path), "", f"cannot read the file: {exc}")]
        ) from exc
    resources, problems = validate_text(text, str(path))
    if problems:
        raise ResourceValidationError(problems)
    return resources


def validate_text(text: str, source: str) -> tuple[list[Resource], list[Problem]]:
    """Parses YAML text holding one or more resources; returns them and every problem found."""
    try:
        documents = [d for d in kube_yaml.load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        return [], [Problem(source, "", _yaml_message(exc))]
    if not documents:
        return [], [Problem(source, "", "the file holds no resource — add a ModelCustomization")]
    resources: list[Resource] = []
    problems: list[Problem] = []
    for index, document in enumerate(documents):
        label = source if len(documents) == 1 else f"{source} (document {index + 1})"
        resource, found = _validate_document(document, label)
        problems.extend(found)
        if resource is not None:
            resources.append(resource)
    return resources, problems


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError):  # well-formed, but not for kubectl
        return f"{where}{problem}"
    return f"{where}invalid YAML ({problem}) — fix the syntax (indentation, colons, quotes)"


def _validate_document(document: Any, source: str) -> tuple[Resource | None, list[Problem]]:
    if not isinstance(document, dict):
        return None, [
            Problem(
                source, "", "a resource must be a mapping with apiVersion, kind, metadata, spec"
            )
        ]
    kind = document.get("kind")
    api_version = document.get("apiVersion")
    if api_version != API_VERSION:
        return None, [
            Problem(
                source,
                "apiVersion",
                f"unknown apiVersion {api_version!r} — use {API_VERSION!r}",
            )
        ]
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [
            Problem(
                source,
                "kind",
                f"unknown kind {kind!r} — {API_VERSION} has {', '.join(KINDS)}",
            )
        ]
    try:
        return model.model_validate(document), []
    except ValidationError as exc:
        errors = exc.errors()
    found = [(path, message) for error in errors for path, message in _explain(error, model)]
    found += _hidden_problems(document, model, errors)
    return None, [Problem(source, path, message) for path, message in found]


#: Rounds of "remove what is wrong, validate the rest" (each round can uncover another layer).
_PRUNE_ROUNDS: Final = 4


def _hidden_problems(
    document: dict[str, Any], model: type[BaseModel], errors: list[ErrorDetails]
) -> list[tuple[str, str]]:
    """Problems that the first errors hid.

    A model's cross-field rules run only once all its fields parse, so a typo would hide a rule
    broken elsewhere. Each round removes what was found wrong (the default, if any, takes its
    place) and validates the rest again; what it reports at or under a removed field is left out,
    since a default there says nothing about what the user wrote.
    """
    reported: set[tuple[str, str]] = set()
    removed: list[str] = []
    hidden: list[tuple[str, str]] = []
    document = copy.deepcopy(document)
    for _ in range(_PRUNE_ROUNDS):
        wrong = [loc for error in errors for loc in _wrong_locations(error)]
        removed += [where for loc in wrong if (where := _remove(document, loc)) is not None]
        if not removed:
            return hidden
        try:
            model.model_validate(document)
            return hidden
        except ValidationError as exc:
            errors = exc.errors()
        for found in (pair for error in errors for pair in _explain(error, model)):
            if found not in reported and not any(_overlaps(found[0], r) for r in removed):
                reported.add(found)
                hidden.append(found)
    return hidden


def _wrong_locations(error: ErrorDetails) -> Iterator[tuple[str | int, ...]]:
    """The fields an error is about: its location, or each broken rule's field."""
    loc = tuple(error["loc"])
    if error["type"] != RULE_ERROR_TYPE:
        yield loc
        return
    for field_path, _ in (error.get("ctx") or {})["violations"]:
        yield loc + tuple(p for p in field_path.split(".") if p)


def _remove(document: Any, loc: Sequence[str | int]) -> str | None:
    """Deletes the value at `loc`; returns the path now left out (a whole list for an item)."""
    parent = document
    for part in loc[:-1]:
        if not _holds(parent, part):
            return None
        parent = parent[part]
    if not loc or not _holds(parent, loc[-1]):
        return None
    del parent[loc[-1]]
    if isinstance(parent, list):  # the items after it moved: the whole list counts as left out
        return _join([str(p) for p in loc[:-1]])
    return _join([str(p) for p in loc])


def _holds(parent: Any, part: str | int) -> bool:
    if isinstance(parent, dict):
        return part in parent
    return isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent)


def _overlaps(path: str, removed: str) -> bool:
    """Whether `path` is `removed`, inside it, or holds it."""
    inner, outer = sorted((path, removed), key=len)
    return outer == inner or outer.startswith((inner + ".", inner + "["))


def _explain(error: ErrorDetails, model: type[BaseModel]) -> Iterator[tuple[str, str]]:
    loc = [str(part) for part in error["loc"]]
    path = _join(loc)
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == RULE_ERROR_TYPE:
        for field_path, message in ctx["violations"]:
            yield _join(loc + [p for p in field_path.split(".") if p]), message
        return
    if kind == "extra_forbidden":
        yield path, _unknown_field(loc, model)
        return
    yield path, _message(kind, ctx, value, error["msg"])


def _message(kind: str, ctx: dict[str, Any], value: Any, default: str) -> str:
    if kind == "missing":
        return "required field is missing — add it"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']} — got {value!r}"
    if kind == "string_type":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (
                f'must be a string, got the number {value!r} — quote it ("{value}"): '
                "the API writes decimals as strings"
            )
        return f"must be a string — got {_type_name(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number — got {value!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false — got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields — got {_type_name(value)}"
    if kind == "list_type":
        return f"must be a list — got {_type_name(value)}"
    if kind == "string_pattern_mismatch":
        hint = FORMAT_HINTS.get(ctx.get("pattern", ""), f"matching {ctx.get('pattern')}")
        return f"{value!r} is not valid — expected {hint}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']} — got {value!r}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']} — got {value!r}"
    if kind == "string_too_long":
        return f"is longer than {ctx['max_length']} characters — shorten it"
    if kind == "string_too_short":
        return "must not be empty — give a value"
    if kind == "too_long":
        return f"has too many entries (at most {ctx['max_length']}) — remove some"
    if kind == "value_error":
        return str(ctx.get("error", default))
    return default


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")


def _join(loc: Sequence[str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


def _unknown_field(loc: Sequence[str], root: type[BaseModel]) -> str:
    name = loc[-1]
    known = _field_names_at(root, loc[:-1])
    if not known:
        return f"unknown field `{name}` — remove it"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`?" if close else f"known fields: {', '.join(sorted(known))}"
    return f"unknown field `{name}` — {hint}"


def _field_names_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """The wire names of the fields of the model found at `loc` under `model`."""
    current: Any = model
    for part in loc:
        if part.isdigit():
            args = get_args(current)
            current = _model_in(args[0]) if args else None
            continue
        if not _is_model(current):
            return []
        field = next(
            (f for n, f in current.model_fields.items() if part in (f.alias, n)),
            None,
        )
        if field is None:
            return []
        current = _model_in(field.annotation)
    if not _is_model(current):
        return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_in(annotation: Any) -> Any:
    """The type inside `X | None`, or the annotation itself."""
    if get_origin(annotation) in (Union, UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _model_in(inner[0]) if len(inner) == 1 else annotation
    return annotation
