"""Generates the CustomResourceDefinitions from the API models (the models are the one source)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from bespoke_operator import constants
from bespoke_operator.api.customization import (
    NAME_LENGTH,
    ModelCustomization,
    ModelCustomizationSpec,
    ModelCustomizationStatus,
)
from bespoke_operator.api.version import ModelVersion, ModelVersionSpec, ModelVersionStatus

__all__ = ["GROUP", "KINDS", "VERSION", "CrdKind", "crd", "openapi_schema", "structural_schema"]

GROUP: Final = constants.GROUP
VERSION: Final = constants.VERSION

# Keys pydantic writes that a structural schema does not allow or does not need.
_DROPPED_KEYS: Final = frozenset({"title", "$defs", "discriminator"})


@dataclass(frozen=True, kw_only=True)
class CrdKind:
    """One kind of the API and how it shows in kubectl."""

    kind: str
    plural: str
    short_names: list[str]
    #: The whole resource: its `spec` field's own schema keys (the rules declared on the field,
    #: such as a version's immutability) go into the CRD with the spec model's schema.
    resource: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    printer_columns: list[dict[str, Any]]
    root_rules: list[dict[str, str]] = field(default_factory=list)
    #: Spec fields that record the past (written once by the operator): their schema keeps its
    #: types and defaults but no rules or patterns, so rules added later never make a stored
    #: object invalid (which would block even its status updates).
    recorded: tuple[str, ...] = ()

    @property
    def singular(self) -> str:
        """The CRD's singular name."""
        return self.kind.lower()

    @property
    def name(self) -> str:
        """The CRD's metadata.name."""
        return f"{self.plural}.{GROUP}"


_AGE: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_READY: Final = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    "description": "The Ready condition's status",
}
# The Ready condition's message says why it is not Ready (a Stalled reason, what is in flight).
_MESSAGE: Final = {
    "name": "Message",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    "description": "The Ready condition's message",
}

KINDS: Final[tuple[CrdKind, ...]] = (
    CrdKind(
        kind="ModelCustomization",
        plural=constants.CUSTOMIZATIONS,
        short_names=["mc"],
        resource=ModelCustomization,
        spec=ModelCustomizationSpec,
        status=ModelCustomizationStatus,
        description="A pre-trained model adapted to your data, gated, served and monitored. "
        "Each training run is recorded as a ModelVersion.",
        printer_columns=[
            {
                "name": "Production",
                "type": "integer",
                "jsonPath": ".status.productionVersion",
                "description": "Version in production",
            },
            {
                "name": "Candidate",
                "type": "integer",
                "jsonPath": ".status.candidateVersion",
                "description": "Version in training or awaiting approval",
            },
            _READY,
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Metric",
                "type": "string",
                "jsonPath": ".status.headlineMetric",
                "description": "Headline metric of the production version",
            },
            {
                "name": "Drift",
                "type": "string",
                "jsonPath": ".status.drift.share",
                "description": "Share of drifted features in the last reading",
            },
            _AGE,
            _MESSAGE,
        ],
        # The server accepts no fieldPath into metadata (the schema does not describe it).
        root_rules=[{k: v for k, v in NAME_LENGTH.as_crd_validation().items() if k != "fieldPath"}],
    ),
    CrdKind(
        kind="ModelVersion",
        plural=constants.VERSIONS,
        short_names=["mv"],
        resource=ModelVersion,
        spec=ModelVersionSpec,
        status=ModelVersionStatus,
        recorded=("snapshot",),
        description="One immutable training run of a ModelCustomization: what it was trained "
        "from, its metrics, each gate's verdict and the decision. The model registry.",
        printer_columns=[
            {"name": "Customization", "type": "string", "jsonPath": ".spec.customization"},
            {"name": "Version", "type": "integer", "jsonPath": ".spec.version"},
            _READY,
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Reason",
                "type": "string",
                "jsonPath": ".status.reason",
                "description": "Why the version is in its phase",
            },
            {"name": "Metric", "type": "string", "jsonPath": ".status.headlineMetric"},
            {"name": "Trigger", "type": "string", "jsonPath": ".spec.trigger", "priority": 1},
            _AGE,
            _MESSAGE,
        ],
    ),
)


class _FactoryDefaults(GenerateJsonSchema):
    """Also writes the defaults of `default_factory` lists and maps, so the server applies them.

    Whole sections default to `{}` through their field's `json_schema_extra` instead, so the
    server fills in each nested default itself.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        return NoDefault if isinstance(value, BaseModel) else value


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema rewritten as a Kubernetes structural schema.

    `$ref`s are inlined, `title`s dropped, optional values become `nullable`, and `const`
    becomes a one-value enum: every node carries its own type, as the API server requires.
    """
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    definitions = raw.get("$defs", {})
    return _structural(raw, definitions)


def _structural(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside a $ref (description, default, rules of the field) win over the target's.
        merged_rules = [
            *target.get("x-kubernetes-validations", []),
            *node.get("x-kubernetes-validations", []),
        ]
        node = {**target, **node}
        if merged_rules:
            node["x-kubernetes-validations"] = merged_rules
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"unions other than `X | None` have no structural schema: {node}")
        outer = {k: v for k, v in node.items() if not (k == "default" and v is None)}
        node = {**_structural(variants[0], definitions), **outer, "nullable": True}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            # Structural schemas forbid it beside `properties`; unknown fields are pruned, and
            # rejected outright under `kubectl apply --validate=strict` (the default).
            continue
        if key == "properties":
            result[key] = {name: _structural(sub, definitions) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            result[key] = _structural(value, definitions)
        else:
            result[key] = value
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    return result


def _with_recorded(spec: dict[str, Any], recorded: tuple[str, ...]) -> dict[str, Any]:
    properties = spec.get("properties", {})
    for name in recorded:
        properties[name] = _without_rules(properties[name])
    return spec


def _without_rules(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_rules(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _without_rules(value)
        for key, value in node.items()
        if key not in ("x-kubernetes-validations", "pattern")
    }


def _field_rules(resource: type[BaseModel], name: str) -> list[Any]:
    """The CEL rules declared on the resource's field `name` itself (not in its model)."""
    extra = resource.model_fields[name].json_schema_extra
    rules = extra.get("x-kubernetes-validations", []) if isinstance(extra, dict) else []
    return list(rules) if isinstance(rules, list) else []


def openapi_schema(kind: CrdKind) -> dict[str, Any]:
    """The CRD's openAPIV3Schema for one kind."""
    spec = _with_recorded(structural_schema(kind.spec), kind.recorded)
    if rules := _field_rules(kind.resource, "spec"):
        spec["x-kubernetes-validations"] = [*spec.get("x-kubernetes-validations", []), *rules]
    # Until the operator writes a status, the server reads the object with this default one,
    # `observedGeneration: 0` (no generation observed yet) and the other fields' defaults:
    # kstatus and Flux then see InProgress (generation 1, observed 0), where an absent status
    # read as Current to kstatus and as an evaluation error to Flux's CEL health expressions.
    status = {**structural_schema(kind.status), "default": {}}
    status["properties"]["observedGeneration"]["default"] = 0
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "bespoke.dev/v1alpha1"},
            "kind": {"type": "string", "description": kind.kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if kind.root_rules:
        schema["x-kubernetes-validations"] = list(kind.root_rules)
    return schema


def crd(kind: CrdKind) -> dict[str, Any]:
    """The CustomResourceDefinition object for one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.name,
            "labels": {constants.PART_OF_LABEL: constants.PART_OF},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": kind.short_names,
                "categories": ["bespoke"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.printer_columns,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }
