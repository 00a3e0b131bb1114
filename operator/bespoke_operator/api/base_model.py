"""`spec.baseModel`: the pre-trained model a customization starts from."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from bespoke_operator.api._base import ApiModel, Uri
from bespoke_operator.api.rules import Rule, raise_violations, schema_rules

__all__ = ["BaseModelSource"]


_TRUST_NEEDS_REVISION: Rule[BaseModelSource] = Rule(
    cel="!has(self.trustRemoteCode) || !self.trustRemoteCode || "
    "(has(self.revision) && size(self.revision) > 0)",
    message="`trustRemoteCode` needs a pinned `revision` (a commit hash or tag), so the code "
    "that runs is the code that was reviewed",
    field_path=".revision",
    check=lambda base: not base.trust_remote_code or bool(base.revision),
)


class BaseModelSource(ApiModel):
    """The pre-trained model to start from."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(_TRUST_NEEDS_REVISION.as_crd_validation())
    )

    uri: Uri = Field(
        description="Where the pre-trained model is: hf://org/name (Hugging Face Hub, or its "
        "local cache when offline), pvc://claim/path, s3://bucket/prefix, or file:///abs/path."
    )
    revision: str | None = Field(
        default=None,
        max_length=128,
        description="The revision to pin (commit hash, tag or branch) for hf:// models. "
        "Required when trustRemoteCode is true.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with the model. Off by default; needs a pinned "
        "revision when on.",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> BaseModelSource:
        raise_violations(self, [_TRUST_NEEDS_REVISION], info)
        return self
