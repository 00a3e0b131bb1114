"""The reconcile core: from a customization and what was observed, the actions and the status.

`decide` does no I/O and reads no clock: everything comes in through `Observed`, so the same
function drives the Kubernetes runtime, the local runtime and table-driven tests. It is
level-triggered: given the same inputs it returns the same answer, and every action is safe to
apply twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from bespoke_operator.api import (
    API_VERSION,
    Condition,
    ModelCustomization,
    ModelCustomizationStatus,
    ModelVersion,
    ModelVersionSpec,
    ModelVersionStatus,
    ObjectMeta,
    headline_metric,
)
from bespoke_operator.api._base import parse_decimal
from bespoke_operator.api.customization import DriftReading, RetrainLedger, Rollout
from bespoke_operator.constants import (
    APPROVAL_ANNOTATION,
    CUSTOMIZATION_LABEL,
    PART_OF,
    PART_OF_LABEL,
    VERSION_LABEL,
)
from bespoke_operator.reconcile.actions import (
    Action,
    CreateVersion,
    DeleteVersion,
    Deploy,
    Event,
    SetVersionStatus,
    StartTrainer,
    StopTrainer,
    Undeploy,
)
from bespoke_operator.reconcile.conditions import set_condition
from bespoke_operator.reconcile.gates import evaluate_gates, format_number
from bespoke_operator.reconcile.hashing import training_hash
from bespoke_operator.reconcile.observed import Observed, TrainerSummary
from bespoke_operator.reconcile.serving import serving_shape
from bespoke_operator.reconcile.trainer_config import trainer_config

__all__ = [
    "APPROVAL_ANNOTATION",
    "PERMANENT_EXIT_CODES",
    "Decision",
    "artifact_uri",
    "decide",
    "version_name",
]

#: Trainer exit codes a retry cannot fix: invalid config, invalid data, out of memory, model not
#: found (see bespoke_trainer.errors; the Job fails fast on them too).
PERMANENT_EXIT_CODES: Final = frozenset({2, 3, 5, 7})
_IN_FLIGHT: Final = frozenset({None, "Pending", "Training", "Evaluating"})


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


class _Plan:
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
        self.rollout = self.previous.rollout
        self.drift = self.previous.drift
        self.ledger = self.previous.retraining
        self.pin_problem: str | None = None

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
        return sorted(n for n, s in self.statuses.items() if s.phase in _IN_FLIGHT)

    def create_version(self, trigger: str) -> int:
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
                trigger=trigger,  # type: ignore[arg-type]
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


def decide(mc: ModelCustomization, observed: Observed) -> Decision:
    """The actions that move the customization toward its spec, and its new status."""
    plan = _Plan(mc, observed)
    _ensure_current_version(plan)
    _stop_orphaned_trainers(plan)
    _apply_drift(plan)
    _progress_training(plan)
    desired = _drive_serving(plan)
    _prune_history(plan, desired)
    for number, status in sorted(plan.statuses.items()):
        if status != plan.seen.get(number):
            plan.actions.append(SetVersionStatus(number, status))
    return Decision(tuple(plan.actions), _status(plan))


def _stop_orphaned_trainers(plan: _Plan) -> None:
    """A trainer still running for a version that no longer exists (deleted by hand) is stopped."""
    orphaned = {
        run.version
        for run in plan.observed.trainer_runs
        if run.state == "Running" and run.version not in plan.specs
    }
    plan.actions.extend(StopTrainer(number) for number in sorted(orphaned))


def _ensure_current_version(plan: _Plan) -> None:
    """A new version when nothing was trained yet or training-relevant spec changed."""
    latest = plan.specs.get(plan.latest)
    if latest is not None and latest.training_hash == training_hash(plan.spec):
        return
    for number in plan.in_flight():
        plan.actions.append(StopTrainer(number))
        plan.update(
            number,
            phase="Failed",
            reason="Superseded",
            message="the spec changed before training finished",
            completed_at=plan.now,
        )
    number = plan.create_version("Initial" if latest is None else "SpecChange")
    plan.event("Normal", "VersionCreated", f"v{number} created: training starts")


def _apply_drift(plan: _Plan) -> None:
    """Reflects the production version's drift reading; retrains when the policy allows."""
    report = plan.observed.drift
    monitoring = plan.spec.monitoring
    if report is None or not monitoring.enabled or report.version != plan.production:
        return
    detected = report.drift_share >= parse_decimal(monitoring.threshold)
    was_detected = (
        plan.drift is not None and plan.drift.version == report.version and plan.drift.detected
    )
    plan.drift = DriftReading(
        version=report.version,
        share=format_number(max(report.drift_share, 0.0)),
        detected=detected,
        checked_at=report.checked_at,
        window_rows=report.window_rows,
        features=list(report.drifted_features[:32]),
    )
    if detected and not was_detected:
        plan.event(
            "Warning",
            "DriftDetected",
            f"v{report.version}: {plan.drift.share} of features drifted "
            f"(threshold {monitoring.threshold}) over {report.window_rows} requests",
        )
    policy = monitoring.on_drift
    if not detected or policy.action != "retrain" or plan.in_flight():
        return
    ledger = plan.ledger
    last = ledger.last_triggered_at
    if last is not None and (
        report.checked_at <= last or plan.now - last < timedelta(seconds=policy.cooldown_seconds)
    ):
        return
    today = plan.now.date().isoformat()
    count = ledger.triggered_today if ledger.day == today else 0
    if count >= policy.max_retrains_per_day:
        return
    number = plan.create_version("Drift")
    plan.ledger = RetrainLedger(last_triggered_at=plan.now, day=today, triggered_today=count + 1)
    plan.event("Normal", "RetrainingStarted", f"v{number} training on drift (policy: retrain)")


def _progress_training(plan: _Plan) -> None:
    for number in plan.in_flight():
        _progress_version(plan, number)
    for number, status in plan.statuses.items():
        if status.phase == "AwaitingApproval" and number in plan.observed.approved_versions:
            plan.update(number, phase="Promoted", reason="Approved", message="approved")
            plan.event("Normal", "Approved", f"v{number} approved for production")


def _progress_version(plan: _Plan, number: int) -> None:
    runs = plan.observed.runs_of(number)
    last = runs[-1] if runs else None
    if last is None:
        _start(plan, number, 1)
        return
    if last.state == "Running":
        plan.update(number, phase="Training", attempts=last.attempt)
        return
    summary = last.summary
    if last.state == "Succeeded" and summary is not None and summary.outcome == "Succeeded":
        _decide_gates(plan, number, summary)
        return
    reason = (summary.reason if summary else None) or "TrainerFailed"
    message = (summary.message if summary else None) or "the trainer pod failed without a summary"
    if last.disrupted:
        _start(plan, number, last.attempt + 1)
        plan.event("Normal", "TrainerRescheduled", f"v{number}: trainer pod was disrupted")
        return
    counted = sum(1 for r in runs if not r.disrupted)
    retry_limit = plan.specs[number].snapshot.training.retry_limit
    permanent = summary is not None and summary.exit_code in PERMANENT_EXIT_CODES
    if permanent or counted > retry_limit:
        plan.update(number, phase="Failed", reason=reason, message=message, completed_at=plan.now)
        plan.event("Warning", "TrainingFailed", f"v{number} failed: {reason}: {message}", number)
        return
    _start(plan, number, last.attempt + 1)
    plan.event(
        "Warning",
        "TrainingRetried",
        f"v{number} attempt {last.attempt} failed ({reason}); retry {counted} of {retry_limit}",
    )


def _start(plan: _Plan, number: int, attempt: int) -> None:
    spec = plan.specs[number]
    parent = spec.parent_version
    champion = plan.production if plan.production != number else None
    config = trainer_config(
        spec,
        warm_start_uri=_artifacts(plan, parent)
        if parent is not None and parent in plan.specs
        else None,
        champion_uri=_artifacts(plan, champion) if champion is not None else None,
    )
    plan.actions.append(StartTrainer(number, attempt, config, spec))
    started = plan.statuses[number].started_at or plan.now
    plan.update(
        number, phase="Training", reason="TrainerStarted", attempts=attempt, started_at=started
    )


def _decide_gates(plan: _Plan, number: int, summary: TrainerSummary) -> None:
    champion = summary.champion_metrics
    if champion is None and plan.production is not None and plan.production != number:
        champion = {k: float(v) for k, v in plan.statuses[plan.production].metrics.items()}
    gates = evaluate_gates(plan.spec, summary.metrics, summary.fairness or {}, champion)
    failed = [g for g in gates if not g.passed]
    metrics = _as_decimals(summary.metrics)
    headline = headline_metric(plan.spec.task)
    approval = (
        plan.spec.evaluation.require_approval and number not in plan.observed.approved_versions
    )
    phase = "Rejected" if failed else ("AwaitingApproval" if approval else "Promoted")
    reason = {"Rejected": "GatesFailed", "AwaitingApproval": "AwaitingApproval"}.get(
        phase, "GatesPassed"
    )
    message = "; ".join(g.message for g in failed) or f"all {len(gates)} gates passed"
    plan.update(
        number,
        phase=phase,
        reason=reason,
        message=message,
        metrics=metrics,
        champion_metrics=_as_decimals(champion or {}),
        fairness=_as_decimals(summary.fairness or {}),
        gates=gates,
        headline_metric=f"{headline}={metrics[headline]}" if headline in metrics else None,
        artifact_uri=summary.artifact_uri or plan.specs[number].artifact_uri,
        data_fingerprint=summary.data_fingerprint,
        completed_at=plan.now,
        decided_at=plan.now,
    )
    plan.event("Normal", "Trained", f"v{number} trained: {_describe(metrics)}", number)
    if phase == "Rejected":
        plan.event("Warning", "Rejected", f"v{number} rejected: {message}")
    elif phase == "AwaitingApproval":
        plan.event(
            "Normal",
            "AwaitingApproval",
            f"v{number} passed the gates; approve with annotation {APPROVAL_ANNOTATION}=true "
            "or serving.pinnedVersion",
        )
    else:
        plan.event("Normal", "Promoted", f"v{number} promoted: {message}")


def _as_decimals(values: dict[str, float]) -> dict[str, str]:
    """Finite, non-negative metrics as API decimals (every metric Bespoke computes is >= 0)."""
    return {k: format_number(v) for k, v in sorted(values.items()) if math.isfinite(v) and v >= 0}


def _describe(metrics: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in list(metrics.items())[:4]) or "no metrics"


def _desired_version(plan: _Plan) -> int | None:
    pinned = plan.spec.serving.pinned_version
    if pinned is not None:
        status = plan.statuses.get(pinned)
        if status is None or status.artifact_uri is None:
            plan.pin_problem = f"pinned version {pinned} does not exist or has no artifacts"
        elif status.reason == "RolloutFailed":
            plan.pin_problem = f"pinned version {pinned} failed its rollout"
        else:
            return pinned
        return plan.production
    promoted = [n for n, s in plan.statuses.items() if s.phase == "Promoted"]
    return max(promoted, default=None)


def _drive_serving(plan: _Plan) -> int | None:
    """Rolls serving to the desired version, rolling back when it does not become available."""
    serving = plan.observed.serving
    if not plan.spec.serving.enabled:
        if serving is not None:
            plan.actions.append(Undeploy())
        plan.rollout = None
        # Nothing to roll out: the version that would serve is production once it is promoted.
        if (unserved := _desired_version(plan)) is not None:
            _complete_rollout(plan, unserved)
        return None
    desired = _desired_version(plan)
    if desired is None:
        return None
    if serving is not None and serving.version == desired and serving.available:
        _complete_rollout(plan, desired)
        # Re-asserted every time: serving-only spec changes (replicas, limits) redeploy in place.
        plan.actions.append(_deploy(plan, desired))
        return desired
    if plan.rollout is None or plan.rollout.version != desired:
        previous = serving.version if serving is not None and serving.available else plan.production
        plan.rollout = Rollout(
            version=desired,
            previous_version=previous if previous != desired else None,
            started_at=plan.now,
        )
    deadline = timedelta(seconds=plan.spec.serving.rollout_deadline_seconds)
    if plan.now - plan.rollout.started_at <= deadline:
        plan.actions.append(_deploy(plan, desired))
        return desired
    previous = plan.rollout.previous_version
    plan.update(
        desired,
        phase="Failed",
        reason="RolloutFailed",
        message=f"not available within {deadline.seconds}s"
        + (f"; rolled back to v{previous}" if previous else ""),
    )
    plan.event(
        "Warning",
        "RolledBack",
        f"v{desired} did not become available within {deadline.seconds}s"
        + (f"; serving v{previous} again" if previous else "; nothing to roll back to"),
    )
    if previous is None:
        plan.rollout = None
        return None
    plan.rollout = Rollout(version=previous, previous_version=None, started_at=plan.now)
    plan.actions.append(_deploy(plan, previous))
    return previous


def _complete_rollout(plan: _Plan, number: int) -> None:
    if plan.spec.serving.enabled and (plan.production != number or plan.rollout is not None):
        plan.event("Normal", "RolledOut", f"v{number} is serving")
    status = plan.statuses[number]
    plan.update(
        number,
        phase="Promoted",
        reason="Pinned" if plan.spec.serving.pinned_version == number else status.reason,
        promoted_at=status.promoted_at or plan.now,
    )
    for other, other_status in plan.statuses.items():
        if other != number and other_status.phase == "Promoted":
            plan.update(other, phase="Retired", reason="Superseded", retired_at=plan.now)
    plan.production = number
    plan.rollout = None


def _deploy(plan: _Plan, number: int) -> Deploy:
    return Deploy(serving_shape(plan.mc, version=number, artifact_uri=_artifacts(plan, number)))


def _artifacts(plan: _Plan, number: int) -> str:
    return plan.statuses[number].artifact_uri or plan.specs[number].artifact_uri


def _prune_history(plan: _Plan, desired: int | None) -> None:
    rollout = plan.rollout
    # The latest version records the training hash last trained: deleting it would retrain.
    protected = {
        plan.latest,
        plan.production,
        desired,
        plan.spec.serving.pinned_version,
        rollout.version if rollout else None,
        rollout.previous_version if rollout else None,
        *plan.in_flight(),
    }
    protected |= {n for n, s in plan.statuses.items() if s.phase == "AwaitingApproval"}
    excess = len(plan.statuses) - plan.spec.version_history_limit
    for number in sorted(plan.statuses):
        if excess <= 0:
            break
        if number in protected:
            continue
        plan.actions.append(DeleteVersion(number))
        del plan.statuses[number]
        excess -= 1


def _status(plan: _Plan) -> ModelCustomizationStatus:
    serving = plan.observed.serving
    serving_ok = serving is not None and serving.available and serving.version == plan.production
    in_flight = plan.in_flight()
    awaiting = sorted(n for n, s in plan.statuses.items() if s.phase == "AwaitingApproval")
    latest_phase = plan.phase(plan.latest)
    served = serving_ok or (not plan.spec.serving.enabled and plan.production is not None)
    stalled_reason = None
    if not served and not in_flight and plan.rollout is None:
        if plan.pin_problem:
            stalled_reason = "PinnedVersionUnavailable"
        elif latest_phase == "Failed":
            stalled_reason = plan.statuses[plan.latest].reason or "TrainingFailed"
        elif latest_phase == "Rejected" and not awaiting:
            stalled_reason = "GatesFailed"
    reconciling = bool(in_flight) or plan.rollout is not None
    if stalled_reason:
        phase = "Failed"
    elif in_flight:
        phase = "Training"
    elif plan.rollout is not None:
        phase = "RollingOut"
    elif awaiting:
        phase = "AwaitingApproval"
    elif served:
        phase = "Ready"
    else:
        phase = "Pending"
    conditions = _conditions(
        plan,
        phase=phase,
        stalled_reason=stalled_reason,
        reconciling=reconciling,
        served=served,
        in_flight=in_flight,
    )
    production = plan.production
    return ModelCustomizationStatus(
        observed_generation=plan.mc.metadata.generation,
        conditions=conditions,
        phase=phase,  # type: ignore[arg-type]
        production_version=production,
        candidate_version=max([*in_flight, *awaiting], default=None),
        latest_version=plan.latest,
        headline_metric=plan.statuses[production].headline_metric if production else None,
        endpoint=serving.endpoint if serving is not None and plan.spec.serving.enabled else None,
        training_hash=plan.specs[plan.latest].training_hash if plan.latest in plan.specs else None,
        drift=plan.drift if plan.drift and plan.drift.version == production else None,
        retraining=plan.ledger,
        rollout=plan.rollout,
    )


def _conditions(
    plan: _Plan,
    *,
    phase: str,
    stalled_reason: str | None,
    reconciling: bool,
    served: bool,
    in_flight: list[int],
) -> list[Condition]:
    conditions: list[Condition] = list(plan.previous.conditions)
    generation = plan.mc.metadata.generation
    production = plan.production

    def put(type_: str, status: bool | None, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type_, status, reason, message, now=plan.now, generation=generation
        )

    ready = served and not reconciling and stalled_reason is None
    put(
        "Ready",
        ready,
        "Serving" if ready else phase,
        (f"v{production} is serving" + (f"; {plan.pin_problem}" if plan.pin_problem else ""))
        if ready
        else _phase_message(plan, phase),
    )
    put(
        "Reconciling",
        reconciling,
        phase if reconciling else "Idle",
        _phase_message(plan, phase) if reconciling else "nothing in progress",
    )
    stalled_message = ""
    if stalled_reason:
        stalled_message = plan.pin_problem or plan.statuses[plan.latest].message or ""
    put("Stalled", stalled_reason is not None, stalled_reason or "AsExpected", stalled_message)
    latest_phase = plan.phase(plan.latest)
    put(
        "Trained",
        None if in_flight else latest_phase not in ("Failed",),
        "Training" if in_flight else (latest_phase or "Pending"),
        f"latest version v{plan.latest}",
    )
    put(
        "Promoted",
        production is not None,
        "Promoted" if production else "NoProductionVersion",
        f"v{production} is the production version" if production else "no version promoted yet",
    )
    endpoint = plan.observed.serving.endpoint if plan.observed.serving else None
    put("Serving", served, "Available" if served else "Unavailable", endpoint or "")
    drift = plan.drift if plan.drift and plan.drift.version == production else None
    put(
        "Drifted",
        None if drift is None else drift.detected,
        "NoReading" if drift is None else ("DriftDetected" if drift.detected else "NoDrift"),
        "" if drift is None else f"drift share {drift.share}",
    )
    return conditions


def _phase_message(plan: _Plan, phase: str) -> str:
    return {
        "Training": f"training v{plan.latest}",
        "RollingOut": f"rolling out v{plan.rollout.version}" if plan.rollout else "rolling out",
        "AwaitingApproval": "a candidate awaits approval",
        "Failed": plan.pin_problem or (plan.statuses[plan.latest].message or "failed")
        if plan.latest in plan.statuses
        else "failed",
        "Pending": "waiting for a version to serve",
        "Ready": "serving",
    }.get(phase, phase)
