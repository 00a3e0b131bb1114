"""`ModelVersion` (bespoke.dev/v1alpha1): one immutable record per training run — the registry."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, SkipValidation

from bespoke_operator.api._base import ApiModel, Decimal, Name, Timestamp
from bespoke_operator.api.conditions import Condition, ObjectMeta
from bespoke_operator.api.customization import ModelCustomizationSpec
from bespoke_operator.api.rules import RECORDED, schema_rules

__all__ = [
    "SPEC_IMMUTABLE",
    "GateResult",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "Trigger",
    "VersionPhase",
]

#: A version's lifecycle phase, then the decision about it.
VersionPhase = Literal[
    "Pending",
    "Training",
    "AwaitingApproval",
    "Promoted",
    "Rejected",
    "Retired",
    "Failed",
]

#: Why a version was created: the first one, a training-relevant spec change, drift (policy).
Trigger = Literal["Initial", "SpecChange", "Drift"]

SPEC_IMMUTABLE: Final[dict[str, str]] = {
    "rule": "self == oldSelf",
    "message": "a ModelVersion's spec is immutable: it records what a version was trained from",
}


def _as_recorded(value: Any) -> Any:
    """A snapshot is history: read as it was written, not judged again by rules added since.

    Judging it again would make versions recorded under older rules unreadable, and the
    operator would lose sight of them (and of the production version among them).
    """
    if isinstance(value, ModelCustomizationSpec):  # made by the operator just now
        return value
    return ModelCustomizationSpec.model_validate(value, context=RECORDED)


class ModelVersionSpec(ApiModel):
    """What this version was trained from. Written once by the operator, never changed."""

    customization: Name = Field(description="Name of the owning ModelCustomization.")
    version: int = Field(ge=1, description="Version number, from 1, increasing per customization.")
    training_hash: str = Field(
        max_length=64, description="Hash of the training-relevant part of the spec snapshot."
    )
    trigger: Trigger = Field(description="Why this version was created.")
    parent_version: int | None = Field(
        default=None, ge=1, description="Version whose adapter warm-started this one."
    )
    artifact_uri: str = Field(
        max_length=1024, description="Where the trainer writes this version's artifacts."
    )
    # SkipValidation: `_as_recorded` validates it, with the context that keeps later rules out.
    snapshot: Annotated[ModelCustomizationSpec, SkipValidation, BeforeValidator(_as_recorded)] = (
        Field(description="The customization spec this version was trained from, as it was then.")
    )


class GateResult(ApiModel):
    """One gate's evaluation, recorded so every decision can be audited."""

    name: str = Field(max_length=128, description="Gate, e.g. accuracy>=, championDelta.")
    metric: str = Field(max_length=64, description="Metric read.")
    value: str | None = Field(
        default=None, max_length=32, description="Candidate's value (null when not reported)."
    )
    threshold: str = Field(max_length=32, description="What the value was compared against.")
    passed: bool = Field(description="Verdict.")
    message: str = Field(default="", max_length=1024, description="Explanation of the verdict.")


class ModelVersionStatus(ApiModel):
    """The run's outcome: metrics, gate verdicts and the decision."""

    observed_generation: int | None = Field(default=None, description="Generation observed.")
    phase: VersionPhase | None = Field(default=None, description="Lifecycle phase or decision.")
    reason: str | None = Field(
        default=None, max_length=128, description="CamelCase reason for the phase."
    )
    message: str | None = Field(default=None, max_length=4096, description="Details.")
    attempts: int = Field(default=0, ge=0, description="Trainer runs started for this version.")
    data_fingerprint: str | None = Field(
        default=None, max_length=128, description="sha256 of the training inputs."
    )
    metrics: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Test metrics of this version (decimal strings).",
        json_schema_extra={"maxProperties": 64},
    )
    champion_metrics: dict[str, Decimal] = Field(
        default_factory=dict,
        description="The production version's metrics on the same test data.",
        json_schema_extra={"maxProperties": 64},
    )
    fairness: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Fairness audit results (decimal strings).",
        json_schema_extra={"maxProperties": 16},
    )
    gates: list[GateResult] = Field(
        default_factory=list, max_length=64, description="Each gate's value and verdict."
    )
    headline_metric: str | None = Field(
        default=None, max_length=64, description="e.g. accuracy=0.912."
    )
    artifact_uri: str | None = Field(
        default=None, max_length=1024, description="Completed artifacts."
    )
    started_at: Timestamp | None = Field(default=None, description="Training started.")
    completed_at: Timestamp | None = Field(default=None, description="Training ended.")
    decided_at: Timestamp | None = Field(default=None, description="Gates decided.")
    promoted_at: Timestamp | None = Field(default=None, description="Went to production.")
    retired_at: Timestamp | None = Field(default=None, description="Left production.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Standard conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ModelVersion(ApiModel):
    """A `ModelVersion` resource."""

    api_version: Literal["bespoke.dev/v1alpha1"] = Field(
        alias="apiVersion", description="bespoke.dev/v1alpha1"
    )
    kind: Literal["ModelVersion"] = Field(description="ModelVersion")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: ModelVersionSpec = Field(
        description="What the version was trained from (immutable).",
        json_schema_extra=schema_rules(SPEC_IMMUTABLE),
    )
    status: ModelVersionStatus | None = Field(default=None, description="Outcome.")
