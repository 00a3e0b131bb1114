"""The working state of one `decide` call, and the names it gives versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from bespoke_operator.api import (
    API_VERSION,
    ModelCustomization,
    ModelCustomizationStatus,
    ModelVersion,
    ModelVersionSpec,
    ModelVersionStatus,
    ObjectMeta,
)
from bespoke_operator.api.version import Trigger
from bespoke_operator.constants import CUSTOMIZATION_LABEL, PART_OF, PART_OF_LABEL, VERSION_LABEL
from bespoke_operator.reconcile.actions import Action, CreateVersion, Event
from bespoke_operator.reconcile.hashing import training_hash
from bespoke_operator.reconcile.observed import Observed

__all__ = ["IN_FLIGHT", "Decision", "Plan", "artifact_uri", "artifacts", "version_name"]

IN_FLIGHT: Final = frozenset({None, "Pending", "Training"})


@dataclass(frozen=True)
class Decision:
    """What to do, and the customization's full new status."""

    actions: tuple[Action, ...]
    status: ModelCustomizationStatus


def version_name(customization: str, version: int) -> str:
    """The ModelVersion's name (also the prefix of its trainer Job and ConfigMap)."""
    return f"{customization}-v{version}"


def artifact_uri(storage_uri: str, version: int) -> str:
    """Where a version's artifacts go under the storage root."""
    return f"{storage_uri.rstrip('/')}/versions/v{version}"


class Plan:
    """The working state of one `decide` call; discarded when it returns."""

    def __init__(self, mc: ModelCustomization, observed: Observed) -> None:
        self.mc = mc
        self.spec = mc.spec
        self.observed = observed
        self.now = observed.now
        self.previous = mc.status or ModelCustomizationStatus()
        self.actions: list[Action] = []
        self.specs: dict[int, ModelVersionSpec] = {
            v.spec.version: v.spec for v in observed.versions
        }
        self.seen: dict[int, ModelVersionStatus | None] = {
            v.spec.version: v.status for v in observed.versions
        }
        self.statuses = {n: s or ModelVersionStatus() for n, s in self.seen.items()}
        self.latest = max([self.previous.latest_version, *self.specs])
        self.production = self.previous.production_version
        if self.production is not None and self.production not in self.specs:
            self.production = None
        # A rollout of a version deleted by hand is over; one whose previous version is gone
        # has nothing to go back to.
        self.rollout = self.previous.rollout
        if self.rollout is not None and self.rollout.version not in self.specs:
            self.rollout = None
        if self.rollout is not None and self.rollout.previous_version not in (None, *self.specs):
            self.rollout = self.rollout.model_copy(update={"previous_version": None})
        self.drift = self.previous.drift
        self.ledger = self.previous.retraining
        self.pin_problem: str | None = None
        #: Start-up deadlines of trainer attempts whose pods have not started yet.
        self.start_deadlines: list[datetime] = []
        self.last_available = self.previous.last_available
        self.failed_serving_hash = self.previous.failed_serving_hash
        #: Why production is unavailable, when it is (an outage, not a rollout of something new).
        self.degraded: str | None = None
        #: A rollout past its deadline with nothing to roll back to: still applied, and why.
        self.overdue: str | None = None

    def event(self, type_: str, reason: str, message: str, version: int | None = None) -> None:
        kind: Literal["Normal", "Warning"] = "Warning" if type_ == "Warning" else "Normal"
        self.actions.append(Event(kind, reason, message, version))

    def update(self, number: int, **changes: Any) -> None:
        self.statuses[number] = self.statuses[number].model_copy(update=changes)

    def phase(self, number: int | None) -> str | None:
        return (
            None if number is None or number not in self.statuses else self.statuses[number].phase
        )

    def in_flight(self) -> list[int]:
        return sorted(n for n, s in self.statuses.items() if s.phase in IN_FLIGHT)

    def create_version(self, trigger: Trigger) -> int:
        # A trainer of an unrecorded or deleted version holds its number too: a new version
        # never reuses a number whose trainer objects may still exist.
        number = max([self.latest, *(run.version for run in self.observed.trainer_runs)]) + 1
        warm = self.spec.training.warm_start and self.production is not None
        name = self.mc.metadata.name
        version = ModelVersion(
            api_version=API_VERSION,
            kind="ModelVersion",
            metadata=ObjectMeta(
                name=version_name(name, number),
                namespace=self.mc.metadata.namespace,
                labels={
                    PART_OF_LABEL: PART_OF,
                    CUSTOMIZATION_LABEL: name,
                    VERSION_LABEL: str(number),
                },
            ),
            spec=ModelVersionSpec(
                customization=name,
                version=number,
                training_hash=training_hash(self.spec),
                trigger=trigger,
                parent_version=self.production if warm else None,
                artifact_uri=artifact_uri(self.spec.storage.uri, number),
                snapshot=self.spec,
            ),
        )
        self.actions.append(CreateVersion(version))
        self.specs[number] = version.spec
        self.seen[number] = None
        self.statuses[number] = ModelVersionStatus(phase="Pending", reason="Created")
        self.latest = number
        return number


def artifacts(plan: Plan, number: int) -> str:
    return plan.statuses[number].artifact_uri or plan.specs[number].artifact_uri
