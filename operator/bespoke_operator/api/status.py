"""`ModelCustomization.status`: what the operator observed and decided."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bespoke_operator.api._base import ApiModel, Decimal, Timestamp, section
from bespoke_operator.api.conditions import Condition
from bespoke_operator.api.serving import Serving

__all__ = [
    "CustomizationPhase",
    "DriftReading",
    "ModelCustomizationStatus",
    "RetrainLedger",
    "Rollout",
    "ServedShape",
]


#: The customization's one-word summary. `Degraded` is reserved for a production version that
#: is unavailable (issue 16's rollback semantics produce it).
CustomizationPhase = Literal[
    "Pending",
    "Training",
    "AwaitingApproval",
    "RollingOut",
    "Ready",
    "Degraded",
    "Failed",
]


class DriftReading(ApiModel):
    """The last drift reading of the served version."""

    version: int = Field(ge=1, description="Version the reading is about.")
    share: Decimal = Field(description="Share of drifted features, 0 to 1, as a string.")
    detected: bool = Field(description="Whether the share is at or above the policy threshold.")
    checked_at: Timestamp = Field(description="When the reading was taken.")
    window_rows: int = Field(default=0, ge=0, description="Requests in the compared window.")
    features: list[str] = Field(
        default_factory=list, max_length=32, description="Names of the drifted features."
    )


class RetrainLedger(ApiModel):
    """Bookkeeping for the drift retrain policy (cooldown and daily cap)."""

    last_triggered_at: Timestamp | None = Field(
        default=None, description="When drift last started a retrain."
    )
    day: str | None = Field(
        default=None, max_length=10, description="UTC day (YYYY-MM-DD) of triggeredToday."
    )
    triggered_today: int = Field(default=0, ge=0, description="Drift retrains started that day.")


class Rollout(ApiModel):
    """A serving rollout in progress."""

    version: int = Field(ge=1, description="Version being rolled out.")
    previous_version: int | None = Field(
        default=None, description="Version to roll back to if this one does not become available."
    )
    started_at: Timestamp = Field(description="When the rollout started.")
    serving_hash: str | None = Field(
        default=None, max_length=64, description="Hash of the serving shape being rolled out."
    )


class ServedShape(ApiModel):
    """The serving shape last seen available: what a failed serving-only change rolls back to."""

    version: int = Field(ge=1, description="Version that was serving.")
    serving_hash: str = Field(max_length=64, description="Hash of the serving shape.")
    serving: Serving = Field(description="spec.serving as it was when it was available.")
    available_at: Timestamp = Field(description="When it was seen available.")


class ModelCustomizationStatus(ApiModel):
    """What the operator observed and decided. Written by the operator only."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Reconciling, Stalled and the domain conditions Trained, Promoted, "
        "Serving, Drifted.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    phase: CustomizationPhase | None = Field(
        default=None, description="One-word summary for people; tools read conditions."
    )
    production_version: int | None = Field(default=None, description="Version in production.")
    candidate_version: int | None = Field(
        default=None, description="Version being trained, evaluated or awaiting approval."
    )
    latest_version: int = Field(default=0, ge=0, description="Highest version number created.")
    headline_metric: str | None = Field(
        default=None,
        max_length=64,
        description="The production version's headline metric, e.g. accuracy=0.912.",
    )
    endpoint: str | None = Field(
        default=None, max_length=512, description="In-cluster URL of the serving Service."
    )
    training_hash: str | None = Field(
        default=None, max_length=64, description="Hash of the training-relevant spec last trained."
    )
    drift: DriftReading | None = Field(default=None, description="Last drift reading.")
    retraining: RetrainLedger = section(RetrainLedger, "Drift retrain bookkeeping.")
    rollout: Rollout | None = Field(default=None, description="Rollout in progress, if any.")
    trainer_start_deadline: Timestamp | None = Field(
        default=None,
        description="When a trainer pod that has not started by then, with an image pull, "
        "configuration or scheduling error, fails its attempt (the next check is due then).",
    )
    last_available: ServedShape | None = Field(
        default=None, description="The serving shape last seen available (the rollback target)."
    )
    failed_serving_hash: str | None = Field(
        default=None,
        max_length=64,
        description="Hash of a spec.serving whose rollout did not become available: the last "
        "available shape serves until spec.serving changes.",
    )
