"""`spec.baseModel`: the pre-trained model a customization starts from."""

from __future__ import annotations

from typing import Final

from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from bespoke_operator.api._base import ApiModel, Uri
from bespoke_operator.api.rules import Rule, raise_violations, schema_rules

__all__ = ["BaseModelSource"]


_TRUST_NEEDS_REVISION: Rule[BaseModelSource] = Rule(
    cel="!has(self.trustRemoteCode) || !self.trustRemoteCode || !self.uri.startsWith('hf://') || "
    "(has(self.revision) && size(self.revision) > 0)",
    message="`trustRemoteCode` needs a pinned `revision` (a commit hash or tag), so the code "
    "that runs is the code that was reviewed",
    field_path=".revision",
    check=lambda base: (
        not base.trust_remote_code or not base.uri.startswith("hf://") or bool(base.revision)
    ),
)
_TRUST_NEEDS_HUB: Rule[BaseModelSource] = Rule(
    cel="!has(self.trustRemoteCode) || !self.trustRemoteCode || self.uri.startsWith('hf://')",
    message="`trustRemoteCode` is only for hf:// models, whose code `revision` pins to a "
    "reviewed commit; code in a pvc://, s3:// or file:// model cannot be pinned — publish the "
    "model to a Hub repository and pin its revision, or use a model that needs no remote code",
    field_path=".trustRemoteCode",
    check=lambda base: not base.trust_remote_code or base.uri.startswith("hf://"),
)
_REVISION_NEEDS_HUB: Rule[BaseModelSource] = Rule(
    cel="!has(self.revision) || self.uri.startsWith('hf://')",
    message="`revision` pins a Hugging Face Hub commit and applies to hf:// models only: a "
    "pvc://, s3:// or file:// model has no revisions — remove `revision`",
    field_path=".revision",
    check=lambda base: base.revision is None or base.uri.startswith("hf://"),
)
_BASE_MODEL_RULES: Final = (_TRUST_NEEDS_REVISION, _TRUST_NEEDS_HUB, _REVISION_NEEDS_HUB)


class BaseModelSource(ApiModel):
    """The pre-trained model to start from."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(*(rule.as_crd_validation() for rule in _BASE_MODEL_RULES))
    )

    uri: Uri = Field(
        description="Where the pre-trained model is: hf://org/name (Hugging Face Hub, or its "
        "local cache when offline), pvc://claim/path, s3://bucket/prefix, or file:///abs/path."
    )
    revision: str | None = Field(
        default=None,
        max_length=128,
        description="The revision to pin (commit hash, tag or branch); hf:// models only. "
        "Required when trustRemoteCode is true.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with the model. Off by default; hf:// models "
        "only, and needs a pinned revision when on.",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> BaseModelSource:
        raise_violations(self, _BASE_MODEL_RULES, info)
        return self
