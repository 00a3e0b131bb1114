"""`spec.serving`: how the production version is served."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, field_validator

from bespoke_operator.api._base import ApiModel, Quantity, section
from bespoke_operator.api.rules import FieldRule
from bespoke_operator.api.storage import SecretReference
from bespoke_operator.api.training import Resources

__all__ = [
    "Batching",
    "RequestLimits",
    "Serving",
    "ServingResources",
]


class Batching(ApiModel):
    """How `/classify` requests share model calls."""

    mode: Literal["greedy", "adaptive"] = Field(
        default="greedy",
        description=(
            "greedy: requests that queued while the model was busy ride in its next call, and "
            "no request waits for a batch to fill; adaptive: BentoML's adaptive batching, which "
            "waits up to maxLatencyMs for a batch to fill."
        ),
    )
    max_batch_size: int = Field(
        default=32, ge=2, le=1024, description="Most texts in one model call (2 or more)."
    )
    max_latency_ms: int = Field(
        default=100,
        ge=1,
        le=60000,
        description="adaptive only: the longest a request waits for a batch to fill.",
    )


class RequestLimits(ApiModel):
    """Bounds on each request; larger requests get a 4xx naming the limit."""

    max_texts_per_request: int = Field(default=64, ge=1, le=10000, description="Texts per call.")
    max_characters_per_text: int = Field(
        default=4000, ge=1, le=1000000, description="Characters per text or prompt."
    )
    max_new_tokens: int = Field(
        default=256, ge=1, le=32768, description="Generated tokens per prompt (causal-lm)."
    )
    max_request_bytes: int = Field(
        default=1048576, ge=1024, le=67108864, description="Request body size in bytes."
    )


_PINNED_RULE: Final[FieldRule[int]] = FieldRule(
    "self >= 1",
    "`pinnedVersion` must be 1 or more: versions are numbered from 1",
    lambda version: version >= 1,
)


class ServingResources(Resources):
    """Compute requested for each serving pod (smaller defaults than a trainer's)."""

    cpu: Quantity = Field(default="1", description='CPU request, e.g. "1" or "500m".')
    memory: Quantity = Field(default="2Gi", description='Memory request and limit, e.g. "2Gi".')
    ephemeral_storage: Quantity = Field(
        default="10Gi",
        description="Scratch space: the size limit of the pod's /tmp (a downloaded base model, "
        "the Hugging Face cache) and its ephemeral-storage request.",
    )


class Serving(ApiModel):
    """How the production version is served."""

    enabled: bool = Field(default=True, description="Serve the production version.")
    replicas: int = Field(default=1, ge=0, le=100, description="Serving pods.")
    resources: ServingResources = section(ServingResources, "Compute for each serving pod.")
    image: str | None = Field(
        default=None, max_length=512, description="Serving image. Omitted: the operator's default."
    )
    secret_ref: SecretReference | None = Field(
        default=None,
        description="Credentials the serving pods read artifacts with (e.g. a read-only "
        "s3:// key). Omitted: serving pods get no Secret; the trainer's storage.secretRef "
        "(write keys, Hub token) never reaches the internet-facing pods.",
    )
    batching: Batching = section(Batching, "Adaptive batching.")
    limits: RequestLimits = section(RequestLimits, "Request size limits.")
    merge_adapter: bool = Field(
        default=False,
        description="Merge the adapter into the base weights at load (faster inference, "
        "more memory).",
    )
    pinned_version: int | None = Field(
        default=None,
        description="Break-glass override: serve exactly this version, whatever its gates and "
        "requireApproval say, and promote nothing else while it is set (a rollback). Serving a "
        "version that did not pass records a GatesBypassed Warning event. Approvals in Git go "
        "in evaluation.approvedVersions instead.",
        json_schema_extra=_PINNED_RULE.schema,
    )
    rollout_deadline_seconds: int = Field(
        default=600,
        ge=30,
        description="A new version that is not available after this long is rolled back.",
    )

    _pinned = field_validator("pinned_version")(_PINNED_RULE.check)
