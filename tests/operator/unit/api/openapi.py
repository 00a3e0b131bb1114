"""Validates objects against a CRD's openAPIV3Schema the way the API server does, without a server.

Steps, in the server's order: structural defaulting, strict unknown-field detection, OpenAPI
validation (jsonschema, with `nullable` honoured), then every `x-kubernetes-validations` CEL rule
evaluated with cel-python. This proves the generated schema itself (not the pydantic models)
accepts the examples and rejects the invalid fixtures; the real API server test lives in
tests/operator/cluster.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema

__all__ = ["apply_defaults", "schema_errors"]

_ENV = celpy.Environment()


@functools.cache
def _program(expression: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(expression))


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting: missing properties get `default`, recursively, as the server does."""
    obj = copy.deepcopy(obj)
    _default(obj, schema)
    return obj


def _default(obj: Any, schema: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                _default(obj[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for value in obj.values():
                _default(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _default(item, schema["items"])


def schema_errors(obj: Any, schema: dict[str, Any], old: Any = None) -> list[str]:
    """Every reason the server would reject `obj` (an update of `old` when given)."""
    obj = apply_defaults(obj, schema)
    if old is not None:
        old = apply_defaults(old, schema)
    errors = list(_unknown_fields(obj, schema, ""))
    validator = jsonschema.Draft4Validator(_as_jsonschema(schema))
    for error in validator.iter_errors(obj):
        path = ".".join(str(p) for p in error.absolute_path)
        errors.append(f"{path}: {error.message}")
    if not errors:
        errors += _cel_errors(obj, old, schema, "")
    return errors


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    if isinstance(obj, dict) and "properties" in schema:
        for name, value in obj.items():
            child = f"{path}.{name}" if path else name
            if name not in schema["properties"]:
                yield f'unknown field "{child}"'
                continue
            yield from _unknown_fields(value, schema["properties"][name], child)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


def _as_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 `nullable` becomes a JSON Schema type list; CEL keys are left out."""
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default"):
            continue
        if key == "properties":
            result[key] = {k: _as_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = _as_jsonschema(value)
        else:
            result[key] = value
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
    return result


def _cel_errors(obj: Any, old: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    if obj is None:
        return errors
    for rule in schema.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue  # transition rules only run on updates
        activation = {"self": celpy.json_to_cel(obj)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = _program(rule["rule"]).evaluate(activation)
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            where = path + rule.get("fieldPath", "")
            errors.append(f"{where.lstrip('.')}: {rule['message']}")
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in obj:
                old_child = old.get(name) if isinstance(old, dict) else None
                errors += _cel_errors(obj[name], old_child, sub, f"{path}.{name}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            errors += _cel_errors(item, None, schema["items"], f"{path}[{index}]")
    return errors
