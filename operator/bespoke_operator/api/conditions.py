"""Standard Kubernetes condition and object metadata shapes shared by both kinds."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from bespoke_operator.api._base import ApiModel, Name, Timestamp

__all__ = ["Condition", "ObjectMeta"]


class Condition(ApiModel):
    """A standard condition (metav1.Condition): kstatus, Flux and Argo CD read these."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type, e.g. Ready, Reconciling, Stalled.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        min_length=1,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: Timestamp = Field(
        description="When status last changed (not when the message did)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for."
    )


class ObjectMeta(ApiModel):
    """The metadata fields Bespoke reads; the API server's other fields pass through."""

    model_config = ConfigDict(extra="allow")

    name: Name = Field(description="Object name.")
    namespace: Name | None = Field(default=None, description="Namespace.")
    generation: int | None = Field(default=None, description="Spec generation (server-set).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
