"""`spec.storage`: where versions and their artifacts are written."""

from __future__ import annotations

from pydantic import Field

from bespoke_operator.api._base import ApiModel, Name, Uri

__all__ = [
    "SecretReference",
    "Storage",
]


class SecretReference(ApiModel):
    """A Secret in the same namespace, passed to pods as environment variables."""

    name: Name = Field(description="Secret name. The operator never reads it.")


class Storage(ApiModel):
    """Where versions and their artifacts are written."""

    uri: Uri = Field(
        description="Artifact root: pvc://claim/path, s3://bucket/prefix, or a local path. "
        "Versions go to <uri>/versions/v<N>/. A local run (`bespoke run`) keeps its artifacts in "
        "its state directory instead (<state-dir>/<name>/artifacts) and ignores this field."
    )
    secret_ref: SecretReference | None = Field(
        default=None,
        description="The trainer's credentials (e.g. AWS_ACCESS_KEY_ID, HF_TOKEN) for s3:// or "
        "hf:// access. Serving pods do not get them (see serving.secretRef).",
    )
