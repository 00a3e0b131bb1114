"""An in-memory stand-in for a runtime, for driving `decide` through whole lifecycles in tests.

It applies actions the way a runtime would (records versions, trainer runs, the serving
Deployment) and lets a test play the outside world: finish a trainer, make a rollout available,
report drift, move the clock.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bespoke_operator.api import ModelCustomization, ModelVersion
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile import (
    Action,
    CreateVersion,
    Decision,
    DeleteVersion,
    Deploy,
    DriftReport,
    Event,
    Observed,
    ServingState,
    SetVersionStatus,
    StartTrainer,
    StopTrainer,
    TrainerRun,
    TrainerSummary,
    Undeploy,
    approved_versions,
    decide,
)
from bespoke_operator.reconcile.serving import ServingShape

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "text-classification-lora.yaml"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def customization(**spec_changes: Any) -> dict[str, Any]:
    """The sentiment example as a dict, with dotted-path changes (e.g. serving__replicas=2)."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"].update(namespace="ml", generation=1)
    for dotted, value in spec_changes.items():
        *parents, leaf = dotted.split("__")
        node = document["spec"]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document


def summary(version: int, **metrics: float) -> TrainerSummary:
    """A successful trainer summary."""
    return TrainerSummary(
        outcome="Succeeded",
        version=version,
        metrics=metrics,
        artifactUri=f"pvc://bespoke-artifacts/sentiment/versions/v{version}",
        dataFingerprint="sha256:abc",
    )


class InMemoryWorld:
    """Applies actions to in-memory state; the test plays trainers, pods and the clock."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.status: dict[str, Any] | None = None
        self.now = START
        self.versions: dict[int, ModelVersion] = {}
        self.runs: dict[tuple[int, int], TrainerRun] = {}
        self.serving: ServingState | None = None
        self.drift: DriftReport | None = None
        self.approved: set[int] = set()
        self.events: list[Event] = []
        self.deployed: ServingShape | None = None
        self.last: Decision | None = None

    @property
    def mc(self) -> ModelCustomization:
        body = copy.deepcopy(self.document)
        if self.status is not None:
            body["status"] = self.status
        return ModelCustomization.model_validate(body)

    def observed(self) -> Observed:
        # `approved` are the versions a person annotated; the runtimes' own function reads the
        # annotations and spec.evaluation.approvedVersions.
        versions = tuple(
            v.model_copy(
                update={
                    "metadata": v.metadata.model_copy(
                        update={"annotations": {APPROVAL_ANNOTATION: "true"}}
                    )
                }
            )
            if v.spec.version in self.approved
            else v
            for v in self.versions.values()
        )
        return Observed(
            now=self.now,
            versions=versions,
            trainer_runs=tuple(self.runs.values()),
            serving=self.serving,
            drift=self.drift,
            approved_versions=approved_versions(self.mc.spec, versions),
        )

    def reconcile(self) -> Decision:
        decision = decide(self.mc, self.observed())
        for action in decision.actions:
            self._apply(action)
        self.status = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.last = decision
        return decision

    def _apply(self, action: Action) -> None:
        if isinstance(action, CreateVersion):
            self.versions[action.version.spec.version] = action.version
        elif isinstance(action, SetVersionStatus):
            mv = self.versions[action.version]
            self.versions[action.version] = mv.model_copy(update={"status": action.status})
        elif isinstance(action, StartTrainer):
            self.runs.setdefault(
                (action.version, action.attempt),
                TrainerRun(action.version, action.attempt, "Running"),
            )
        elif isinstance(action, StopTrainer):
            for key in [k for k in self.runs if k[0] == action.version]:
                del self.runs[key]
        elif isinstance(action, Deploy):
            shape = action.serving.serving_hash
            self.deployed = action.serving
            if self.serving is None or (self.serving.version, self.serving.serving_hash) != (
                action.version,
                shape,
            ):
                # A new pod template: the old pods (if any) keep serving until the new are ready.
                ready = self.serving.ready_replicas if self.serving is not None else 0
                self.serving = ServingState(
                    action.version,
                    available=False,
                    ready_replicas=ready,
                    endpoint="http://sentiment.ml:3000",
                    serving_hash=shape,
                )
        elif isinstance(action, Undeploy):
            self.serving = None
        elif isinstance(action, DeleteVersion):
            del self.versions[action.version]
        elif isinstance(action, Event):
            self.events.append(action)

    # --- the outside world -------------------------------------------------------------------

    def finish(self, version: int, run: TrainerRun | None = None, **metrics: float) -> None:
        """The latest attempt of `version` ends (successfully with `metrics`, or as `run`)."""
        attempt = max(a for v, a in self.runs if v == version)
        self.runs[(version, attempt)] = run or TrainerRun(
            version, attempt, "Succeeded", summary=summary(version, **metrics)
        )

    def become_available(self) -> None:
        assert self.serving is not None
        self.serving = dataclasses.replace(self.serving, available=True, ready_replicas=1)

    def outage(self) -> None:
        """The serving pods go away (node drain, registry outage): nothing is available."""
        assert self.serving is not None
        self.serving = dataclasses.replace(self.serving, available=False, ready_replicas=0)

    def delete_deployment(self) -> None:
        """Someone deletes the serving Deployment."""
        self.serving = None

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def phase(self, version: int) -> str | None:
        status = self.versions[version].status
        return status.phase if status else None

    def condition(self, type_: str) -> str:
        assert self.status is not None
        return next(c["status"] for c in self.status["conditions"] if c["type"] == type_)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def actions_of(decision: Decision, kind: type) -> list[Any]:
    """The actions of one kind in a decision."""
    return [a for a in decision.actions if isinstance(a, kind)]
