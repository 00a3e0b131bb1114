"""What a runtime observed about a customization's children, as plain typed values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from bespoke_operator.api import ModelCustomizationSpec, ModelVersion
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.drift_report import DriftReport, drift_report

__all__ = [
    "RUN_FAILURES",
    "STARTUP_FAILURES",
    "DriftReport",
    "Observed",
    "ServingState",
    "StartupProblem",
    "TrainerRun",
    "TrainerSummary",
    "approved_versions",
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


#: Waiting reasons of a container that will not start by waiting longer (see the kubelet's
#: images and kuberuntime packages); a slow pull (ContainerCreating, PodInitializing) is not one.
STARTUP_FAILURES: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
#: Failures that retrying the same version cannot fix, but a change of where or how it runs can
#: (training.image, resources, gradientCheckpointing, storage.secretRef...): a version that
#: failed with one of them is trained again, as a new version, once those fields change.
RUN_FAILURES: Final = STARTUP_FAILURES | {"OutOfMemory", "Unschedulable"}


@dataclass(frozen=True)
class StartupProblem:
    """Why a trainer pod cannot start: the kubelet's or the scheduler's reason and message.

    `reason` is one of `STARTUP_FAILURES` (a container waiting) or Unschedulable.
    """

    reason: str
    message: str


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
    #: When the attempt's pod was created (its Job's creation while it has none); with
    #: `pending`, the start of its start-up deadline.
    created_at: datetime | None = None
    #: A running attempt none of whose containers has started yet.
    pending: bool = False
    #: Why its pod cannot start, when it cannot (a pending run only).
    startup_problem: StartupProblem | None = None


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


def approved_versions(
    spec: ModelCustomizationSpec, versions: Iterable[ModelVersion]
) -> frozenset[int]:
    """Versions a person approved: listed in `spec.evaluation.approvedVersions` (in Git), or
    annotated `bespoke.dev/approved=true` (by anyone RBAC lets patch the ModelVersion)."""
    annotated = (
        v.spec.version
        for v in versions
        if v.metadata.annotations.get(APPROVAL_ANNOTATION, "").lower() == "true"
    )
    return frozenset(spec.evaluation.approved_versions).union(annotated)
