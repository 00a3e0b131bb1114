"""The local runtime: the operator's decision core driving subprocesses and files.

The same `decide` as on a cluster; trainer Jobs become `python -m bespoke_trainer` processes,
the serving Deployment a `bentoml serve` process on a free local port, ModelVersions and status
files in the state directory. Every action is idempotent, so a killed run picks up where it was.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bespoke_operator.api import (
    URI_SCHEMES,
    ModelCustomization,
    ModelCustomizationSpec,
    ModelCustomizationStatus,
    check_update,
    is_relative_location,
)
from bespoke_operator.errors import MissingLocationError, UpdateRefusedError
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
    drift_report,
)
from bespoke_operator.reconcile.conditions import set_condition
from bespoke_operator.runtimes.local import processes
from bespoke_operator.runtimes.local.state import (
    CustomizationState,
    RollbackPin,
    ServingRecord,
    TrainerRunDir,
    write_json,
)

__all__ = ["Admission", "LocalRuntime", "prepare"]


@dataclass(frozen=True)
class Admission:
    """What admitting a file did: the customization stored, and what became of a rollback pin."""

    customization: ModelCustomization
    resumed: bool
    kept_pin: int | None = None
    dropped_pin: int | None = None


def _spec_json(spec: ModelCustomizationSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def _with_pin(spec: ModelCustomizationSpec, version: int | None) -> ModelCustomizationSpec:
    serving = spec.serving.model_copy(update={"pinned_version": version})
    return spec.model_copy(update={"serving": serving})


def _resolve(uri: str, base: Path) -> str:
    """Relative paths are relative to the customization file, as a person reading it expects."""
    return str((base / uri).resolve()) if is_relative_location(uri) else uri


def prepare(document: Mapping[str, Any], base: Path, state: CustomizationState) -> dict[str, Any]:
    """The customization as the local runtime runs it: paths resolved, storage in the state dir.

    Raises `MissingLocationError` naming every field whose local file is missing (or that names a
    PersistentVolumeClaim, which only a cluster has), so nothing starts on a typo.
    """
    doc = copy.deepcopy(dict(document))
    spec = doc["spec"]
    problems = []
    for field, _ in ModelCustomizationSpec.model_validate(spec).locations():
        if field == "spec.storage.uri":
            continue  # replaced by the state dir below
        holder = doc
        for key in field.split(".")[:-1]:  # spec.dataset.train.uri: the `train` mapping
            holder = holder[key]
        holder["uri"] = _resolve(holder["uri"], base)
        uri = holder["uri"].removeprefix("file://")
        if uri.startswith("pvc://"):
            problems.append(
                f"{field}: {uri} is a PersistentVolumeClaim, which exists only on a cluster — "
                "use a path to the same files here"
            )
        elif not uri.startswith(URI_SCHEMES) and not Path(uri).exists():
            problems.append(f"{field}: {holder['uri']} does not exist — check the path")
    if problems:
        raise MissingLocationError("\n".join(problems))
    spec["storage"] = {"uri": str(state.artifacts)}
    return doc


@dataclass(frozen=True)
class Step:
    """One reconcile pass: what was observed and decided."""

    observed: Observed
    decision: Decision


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LocalRuntime:
    """Observes the state directory and child processes, decides, applies."""

    def __init__(
        self,
        state: CustomizationState,
        *,
        on_event: Callable[[Event], None] = lambda _: None,
        clock: Callable[[], datetime] = _utcnow,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.state = state
        self.on_event = on_event
        self.clock = clock
        self.env = dict(env or {})

    # --- the customization ---------------------------------------------------------------------

    def admit(self, document: Mapping[str, Any]) -> Admission:
        """Stores the wanted customization, keeping status; a changed spec bumps the generation.

        As on a cluster, a change the CRD's transition rules forbid (`task`) raises
        `UpdateRefusedError` and stores nothing. A `bespoke rollback` pin survives admitting the
        same file again; a file that says anything else is the newer intent, so the pin is dropped
        and the file's own `serving.pinnedVersion` (usually none) decides.
        """
        body = copy.deepcopy(dict(document))
        wanted = ModelCustomization.model_validate({**body, "status": None})
        previous = self.state.load_customization()
        if previous is None:
            # A pin left behind by a customization whose state was removed pins nothing now.
            self.state.save_rollback_pin(None)
            return Admission(self._store(body, 1, None), resumed=False)
        violations = check_update(previous.spec, wanted.spec)
        if violations:
            raise UpdateRefusedError(violations)
        pin = self.state.rollback_pin()
        if pin is not None and previous.spec.serving.pinned_version != pin.version:
            pin = None  # the stored spec no longer carries it: a stale record
            self.state.save_rollback_pin(None)
        kept = dropped = None
        if pin is not None:
            as_filed = _with_pin(previous.spec, pin.replaced)
            if _spec_json(wanted.spec) == _spec_json(as_filed):
                serving = {**body["spec"].get("serving", {}), "pinnedVersion": pin.version}
                body["spec"] = {**body["spec"], "serving": serving}
                kept = pin.version
            else:
                dropped = pin.version
        effective = ModelCustomization.model_validate({**body, "status": None})
        changed = _spec_json(effective.spec) != _spec_json(previous.spec)
        generation = (previous.metadata.generation or 1) + (1 if changed else 0)
        mc = self._store(body, generation, previous.status)
        if dropped is not None:
            self.state.save_rollback_pin(None)
        return Admission(mc, resumed=True, kept_pin=kept, dropped_pin=dropped)

    def pin(self, version: int) -> ModelCustomization:
        """Serves exactly `version` (`bespoke rollback`): a spec change, as on a cluster.

        The file's own pin is remembered, so admitting the unchanged file again keeps this one.
        """
        mc = self.customization()
        pin = self.state.rollback_pin()
        own = mc.spec.serving.pinned_version
        replaced = pin.replaced if pin is not None and own == pin.version else own
        self.state.save_rollback_pin(RollbackPin(version, replaced))
        if own == version:
            return mc
        metadata = mc.metadata.model_copy(update={"generation": (mc.metadata.generation or 1) + 1})
        pinned = mc.model_copy(update={"spec": _with_pin(mc.spec, version), "metadata": metadata})
        self.state.save_customization(pinned)
        return pinned

    def _store(
        self, body: dict[str, Any], generation: int, status: ModelCustomizationStatus | None
    ) -> ModelCustomization:
        body["metadata"] = {**body["metadata"], "generation": generation, "namespace": "local"}
        body["status"] = status.model_dump(mode="json", by_alias=True) if status else None
        mc = ModelCustomization.model_validate(body)
        self.state.save_customization(mc)
        return mc

    def customization(self) -> ModelCustomization:
        mc = self.state.load_customization()
        if mc is None:
            raise FileNotFoundError(f"no customization in {self.state.dir}")
        return mc

    # --- one pass --------------------------------------------------------------------------------

    def step(self, *, read_drift: bool = False) -> Step:
        """Observe, decide, apply, store the status."""
        mc = self.customization()
        observed = self.observe(mc, read_drift=read_drift)
        decision = decide(mc, observed)
        for action in decision.actions:
            self._apply(mc, action)
        self._save_status(decision.status)
        return Step(observed, decision)

    def observe(self, mc: ModelCustomization, *, read_drift: bool) -> Observed:
        serving = self._serving_state()
        drift = self._drift(serving) if read_drift and serving and serving.available else None
        versions = self.state.versions()
        return Observed(
            now=self.clock(),
            versions=tuple(versions),
            trainer_runs=tuple(self._run(r) for r in self.state.runs()),
            serving=serving,
            drift=drift,
            approved_versions=approved_versions(mc.spec, versions),
        )

    def _run(self, run: TrainerRunDir) -> TrainerRun:
        pid = int(run.pid.read_text()) if run.pid.exists() else None
        if pid is not None and processes.alive(pid):
            return TrainerRun(run.version, run.attempt, "Running")
        if run.summary.exists():
            try:
                summary = TrainerSummary.model_validate_json(
                    run.summary.read_text(encoding="utf-8")
                )
            except ValueError:
                summary = None
            if summary is not None and summary.outcome == "Succeeded":
                return TrainerRun(run.version, run.attempt, "Succeeded", summary=summary)
            if summary is not None:
                return TrainerRun(run.version, run.attempt, "Failed", summary=summary)
        # Ended without a summary: stopped from outside (Ctrl-C, a kill). Like a preempted pod
        # it is restarted without using a retry, and the trainer resumes from its checkpoint.
        return TrainerRun(run.version, run.attempt, "Failed", disrupted=True)

    def _serving_state(self) -> ServingState | None:
        record = self.state.serving()
        if record is None or not processes.alive(record.pid):
            return None
        return ServingState(
            version=record.version,
            available=processes.ready(record.endpoint),
            ready_replicas=1,
            endpoint=record.endpoint,
        )

    def _drift(self, serving: ServingState) -> DriftReport | None:
        payload = processes.get_json(f"{serving.endpoint}/drift")
        return drift_report(payload) if isinstance(payload, dict) else None

    # --- actions ---------------------------------------------------------------------------------

    def _apply(self, mc: ModelCustomization, action: Action) -> None:
        if isinstance(action, CreateVersion):
            self.state.save_version(action.version)
        elif isinstance(action, SetVersionStatus):
            current = next(v for v in self.state.versions() if v.spec.version == action.version)
            self.state.save_version(current.model_copy(update={"status": action.status}))
        elif isinstance(action, StartTrainer):
            self._start_trainer(action)
        elif isinstance(action, StopTrainer):
            for run in self.state.runs():
                if run.version == action.version and run.pid.exists():
                    processes.stop(int(run.pid.read_text()))
        elif isinstance(action, Deploy):
            self._deploy(action)
        elif isinstance(action, Undeploy):
            self.stop_serving()
        elif isinstance(action, DeleteVersion):
            self.state.delete_version(action.version)
        elif isinstance(action, Event):
            self.state.append_event(
                {
                    "time": self.clock(),
                    "type": action.type,
                    "reason": action.reason,
                    "message": action.message,
                }
            )
            self.on_event(action)

    def _start_trainer(self, action: StartTrainer) -> None:
        run = self.state.run_dir(action.version, action.attempt)
        if run.pid.exists():
            return  # started in an earlier pass: idempotent like a Job create
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.config, action.config)
        pid = processes.start_trainer(run.config, run.summary, run.log, self.env)
        run.pid.write_text(str(pid))

    def _deploy(self, action: Deploy) -> None:
        # One process on this machine: the shape's environment is what applies here (replicas,
        # resources and the image are a cluster's to honour).
        env = action.serving.env
        digest = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
        record = self.state.serving()
        if record is not None and record.env_digest == digest and processes.alive(record.pid):
            return
        self.stop_serving()
        # The same port as before when it is free: a rollback or a new version keeps the URL
        # people and scripts already have.
        port = record.port if record is not None and processes.port_free(record.port) else None
        port = port or processes.free_port()
        pid = processes.start_serving(port, self.state.serving_log, {**self.env, **env})
        self.state.save_serving(
            ServingRecord(pid, port, action.version, action.artifact_uri, digest)
        )

    def stop_serving(self) -> None:
        """Stops the serving process, if any."""
        record = self.state.serving()
        if record is not None:
            processes.stop(record.pid)
        self.state.save_serving(None)

    def stop(self) -> None:
        """`bespoke stop`: ends serving and trainers, and says so in the stored status.

        Nothing reconciles a local customization between runs, so the status is written here:
        without it the last pass's `Ready` and endpoint would outlive the server. The next
        `bespoke run` observes and decides again (trainers resume from their checkpoints).
        """
        self.stop_trainers()
        self.stop_serving()
        mc = self.customization()
        status = mc.status or ModelCustomizationStatus()
        message = f"stopped by `bespoke stop {mc.metadata.name}`; `bespoke run` starts it again"
        conditions = set_condition(
            status.conditions,
            "Ready",
            False,
            "Stopped",
            message,
            now=self.clock(),
            generation=mc.metadata.generation,
        )
        stopped = status.model_copy(
            update={"phase": "Pending", "endpoint": None, "rollout": None, "conditions": conditions}
        )
        self.state.save_customization(mc.model_copy(update={"status": stopped}))

    def stop_trainers(self) -> None:
        """Stops every running trainer (they resume from their checkpoints next time)."""
        for run in self.state.runs():
            if run.pid.exists():
                processes.stop(int(run.pid.read_text()))

    def _save_status(self, status: ModelCustomizationStatus) -> None:
        mc = self.customization()
        self.state.save_customization(mc.model_copy(update={"status": status}))
