"""What `decide` asks a runtime to do. Each action is idempotent when applied twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bespoke_operator.api import ModelVersion, ModelVersionSpec, ModelVersionStatus
from bespoke_operator.reconcile.serving import ServingShape
from bespoke_operator.reconcile.trainer_config import TrainerShape, trainer_shape

__all__ = [
    "Action",
    "CreateVersion",
    "DeleteVersion",
    "Deploy",
    "Event",
    "SetVersionStatus",
    "StartTrainer",
    "StopTrainer",
    "Undeploy",
]


@dataclass(frozen=True)
class CreateVersion:
    """Create the ModelVersion record (the trainer is started by a separate StartTrainer)."""

    version: ModelVersion


@dataclass(frozen=True)
class StartTrainer:
    """Start attempt `attempt` of the trainer for a version with this trainer config."""

    version: int
    attempt: int
    config: dict[str, Any] = field(compare=False, hash=False, default_factory=dict)
    #: What the version was created from, so a runtime need not read it back.
    spec: ModelVersionSpec | None = field(compare=False, hash=False, default=None)

    @property
    def shape(self) -> TrainerShape | None:
        """The trainer pod's shape, decided by the core from `spec` (None without it)."""
        return trainer_shape(self.spec) if self.spec is not None else None


@dataclass(frozen=True)
class StopTrainer:
    """Stop every trainer run of a version (superseded by a newer spec)."""

    version: int


@dataclass(frozen=True)
class SetVersionStatus:
    """Write a version's status (through the status subresource)."""

    version: int
    status: ModelVersionStatus


@dataclass(frozen=True)
class Deploy:
    """Make serving take exactly this shape (create or update): a version, its pods' settings."""

    serving: ServingShape

    @property
    def version(self) -> int:
        return self.serving.version

    @property
    def artifact_uri(self) -> str:
        return self.serving.artifact_uri


@dataclass(frozen=True)
class Undeploy:
    """Remove the serving Deployment and Service (serving disabled)."""


@dataclass(frozen=True)
class DeleteVersion:
    """Delete a version beyond the history limit (its record; artifacts stay in storage)."""

    version: int


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the customization for a lifecycle transition."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    #: The version the event is about, when there is one.
    version: int | None = None


Action = (
    CreateVersion
    | StartTrainer
    | StopTrainer
    | SetVersionStatus
    | Deploy
    | Undeploy
    | DeleteVersion
    | Event
)
