"""What a runtime observed about a customization's children, as plain typed values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bespoke_operator.api import ModelVersion

__all__ = [
    "DriftReport",
    "Observed",
    "ServingState",
    "TrainerRun",
    "TrainerSummary",
    "drift_report",
]


class TrainerSummary(BaseModel):
    """The trainer's short JSON summary, read from its pod's termination message."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    outcome: Literal["Succeeded", "Failed"]
    version: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] | None = Field(default=None, alias="championMetrics")
    fairness: dict[str, float] | None = None
    artifact_uri: str | None = Field(default=None, alias="artifactUri")
    data_fingerprint: str | None = Field(default=None, alias="dataFingerprint")
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = Field(default=None, alias="exitCode")


TrainerState = Literal["Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class TrainerRun:
    """One trainer Job (one attempt) of a version."""

    version: int
    attempt: int
    state: TrainerState
    summary: TrainerSummary | None = None
    # A pod removed by preemption, eviction or node loss: retried without counting an attempt.
    disrupted: bool = False
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ServingState:
    """The serving Deployment as observed."""

    version: int
    available: bool
    ready_replicas: int = 0
    endpoint: str | None = None
    #: The serving shape the Deployment was made from (`serving_hash`); None when unrecorded
    #: (a Deployment of an older operator, or a runtime that has one shape only).
    serving_hash: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """The `/drift` reading of the serving service."""

    version: int
    checked_at: datetime
    drift_share: float
    dataset_drift: bool
    window_rows: int = 0
    drifted_features: tuple[str, ...] = ()


def drift_report(payload: Mapping[str, Any]) -> DriftReport | None:
    """Parses the serving service's `/drift` JSON; None before its first reading."""
    checked = payload.get("checkedAt")
    version = payload.get("version")
    if not checked or not isinstance(version, int):
        return None
    drifted = payload.get("driftedFeatures") or []
    return DriftReport(
        version=version,
        checked_at=datetime.fromisoformat(str(checked).replace("Z", "+00:00")),
        drift_share=float(payload.get("driftShare", 0.0)),
        dataset_drift=bool(payload.get("datasetDrift", False)),
        window_rows=int(payload.get("windowRows", 0)),
        drifted_features=tuple(str(f) for f in drifted),
    )


@dataclass(frozen=True)
class Observed:
    """Everything `decide` may look at besides the customization itself."""

    now: datetime
    versions: tuple[ModelVersion, ...] = ()
    trainer_runs: tuple[TrainerRun, ...] = ()
    serving: ServingState | None = None
    drift: DriftReport | None = None
    approved_versions: frozenset[int] = field(default_factory=frozenset)

    def version(self, number: int) -> ModelVersion | None:
        """The ModelVersion with this number, if observed."""
        return next((v for v in self.versions if v.spec.version == number), None)

    def runs_of(self, number: int) -> list[TrainerRun]:
        """The trainer runs of a version, oldest attempt first."""
        return sorted(
            (r for r in self.trainer_runs if r.version == number), key=lambda r: r.attempt
        )
