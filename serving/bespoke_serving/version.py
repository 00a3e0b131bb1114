"""Read and check a version directory written by the trainer (ARCHITECTURE §4 layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BaseModelRef",
    "VersionError",
    "VersionInfo",
    "read_reference",
    "read_version",
    "read_vocabulary",
]


class VersionError(RuntimeError):
    """The version directory is missing, incomplete or inconsistent."""


class BaseModelRef(BaseModel):
    """Where the pre-trained model came from."""

    model_config = ConfigDict(extra="ignore")

    uri: str
    revision: str | None = None


class VersionInfo(BaseModel):
    """`bespoke-version.json`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: int = Field(ge=1)
    task: Literal["text-classification", "causal-lm"]
    method: Literal["lora", "qlora", "full"]
    base_model: BaseModelRef = Field(alias="baseModel")
    labels: list[str] = Field(default_factory=list)
    max_sequence_length: int = Field(default=256, alias="maxSequenceLength", ge=1)


def read_version(directory: Path, expected: int | None) -> VersionInfo:
    """Metadata of a complete version; `expected` guards against serving the wrong one."""
    if not (directory / "COMPLETE").exists():
        raise VersionError(f"{directory} is not a complete version (no COMPLETE marker)")
    try:
        info = VersionInfo.model_validate_json((directory / "bespoke-version.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise VersionError(f"cannot read {directory}/bespoke-version.json: {exc}") from exc
    if expected is not None and info.version != expected:
        raise VersionError(
            f"{directory} holds version {info.version}, but BESPOKE_VERSION is {expected}"
        )
    if info.task == "text-classification" and len(info.labels) < 2:
        raise VersionError(f"{directory}: a classification version needs at least 2 labels")
    return info


def read_reference(directory: Path) -> pd.DataFrame | None:
    """The held-out traffic drift is measured against, when the trainer wrote it."""
    path = directory / "reference.parquet"
    return pd.read_parquet(path) if path.exists() else None


def read_vocabulary(directory: Path) -> frozenset[str]:
    """Training vocabulary for the out-of-vocabulary feature (empty when absent)."""
    path = directory / "vocabulary.json"
    if not path.exists():
        return frozenset()
    tokens = json.loads(path.read_text(encoding="utf-8")).get("tokens", [])
    return frozenset(str(t) for t in tokens)
