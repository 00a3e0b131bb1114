"""The reconcile core: from a customization and what was observed, the actions and the status.

`decide` does no I/O and reads no clock: everything comes in through `Observed`, so the same
function drives the Kubernetes runtime, the local runtime and table-driven tests. It is
level-triggered: given the same inputs it returns the same answer, and every action is safe to
apply twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from bespoke_operator.api.serving import Serving
from bespoke_operator.api.status import CustomizationPhase, ServedShape
from bespoke_operator.api.version import Trigger
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
from bespoke_operator.reconcile.conditions import ConditionType, set_condition, stalled_conditions
from bespoke_operator.reconcile.gates import evaluate_gates, format_number
from bespoke_operator.reconcile.hashing import serving_hash, training_hash
from bespoke_operator.reconcile.observed import Observed, TrainerRun, TrainerSummary
from bespoke_operator.reconcile.serving import serving_shape, unservable
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
_IN_FLIGHT: Final = frozenset({None, "Pending", "Training"})
#: Failures that retrying the same version cannot fix, but a change of where or how it runs can
#: (training.image, resources, gradientCheckpointing, storage.secretRef...): a version that
#: failed with one of them is trained again, as a new version, once those fields change.
_RUN_FAILURES: Final = frozenset(
    {
        "OutOfMemory",
        "Unschedulable",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
_OOM_HINT: Final = (
    "; lower training.batchSize (raise training.gradientAccumulationSteps to keep the "
    "effective batch), set training.gradientCheckpointing: true, or raise "
    "training.resources.memory (or use a larger GPU)"
)


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
        return sorted(n for n, s in self.statuses.items() if s.phase in _IN_FLIGHT)

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


def decide(mc: ModelCustomization, observed: Observed) -> Decision:
    """The actions that move the customization toward its spec, and its new status."""
    plan = _Plan(mc, observed)
    _ensure_current_version(plan)
    _stop_orphaned_trainers(plan)
    _apply_drift(plan)
    _progress_training(plan)
    desired = _drive_serving(plan)
    _prune_history(plan, desired)
    for number, decided in sorted(plan.statuses.items()):
        status = _version_conditions(plan, decided)
        if status != plan.seen.get(number):
            plan.actions.append(SetVersionStatus(number, status))
    # The status first: a condition that flips (Degraded) adds its event to the actions.
    new_status = _status(plan)
    return Decision(tuple(plan.actions), new_status)


def _version_conditions(plan: _Plan, status: ModelVersionStatus) -> ModelVersionStatus:
    """A version's Ready condition: True while it is the promoted one; reason is its phase."""
    phase = status.phase or "Pending"
    conditions = set_condition(
        status.conditions,
        "Ready",
        phase == "Promoted",
        phase,
        status.message or status.reason or phase,
        now=plan.now,
        generation=None,
    )
    if conditions == status.conditions:
        return status
    return status.model_copy(update={"conditions": conditions})


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
    if (
        latest is not None
        and latest.training_hash == training_hash(plan.spec)
        and not _run_failure_addressed(plan, latest)
    ):
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
        if _cannot_start(plan, number, last):
            return
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
    permanent = summary is not None and (
        summary.exit_code in PERMANENT_EXIT_CODES or reason in _RUN_FAILURES
    )
    if reason == "OutOfMemory" and "training.batchSize" not in message:
        message += _OOM_HINT
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


def _cannot_start(plan: _Plan, number: int, run: TrainerRun) -> bool:
    """Fails an attempt whose pod could not start by its start-up deadline; True if it did.

    Only a reason that waiting will not fix counts (an image that cannot be pulled, a missing
    Secret or ConfigMap key, no node that fits); a slow image pull or a Job queued by Kueue is
    waited for. Retrying the same version would fail the same way, so the version fails, with
    the kubelet's or scheduler's reason, until the spec changes where or how it runs.
    """
    if not run.pending or run.created_at is None:
        return False
    seconds = plan.spec.training.startup_deadline_seconds
    deadline = run.created_at + timedelta(seconds=seconds)
    problem = run.startup_problem
    if problem is None or plan.now < deadline:
        plan.start_deadlines.append(deadline)
        return False
    message = f"the trainer pod did not start within {seconds}s: {problem.message}"
    plan.actions.append(StopTrainer(number))
    plan.update(
        number, phase="Failed", reason=problem.reason, message=message, completed_at=plan.now
    )
    plan.event(
        "Warning", "TrainingFailed", f"v{number} failed: {problem.reason}: {message}", number
    )
    return True


def _run_failure_addressed(plan: _Plan, latest: ModelVersionSpec) -> bool:
    """Whether the latest version failed in a way a change of where it runs fixes, now changed."""
    status = plan.statuses.get(latest.version)
    if status is None or status.phase != "Failed" or status.reason not in _RUN_FAILURES:
        return False
    before = latest.snapshot
    return (before.training, before.storage) != (plan.spec.training, plan.spec.storage)


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
        problem = "does not exist" if status is None else unservable(status)
        if problem is None:
            return pinned
        plan.pin_problem = f"pinned version {pinned} {problem}"
        return plan.production
    promoted = [n for n, s in plan.statuses.items() if s.phase == "Promoted"]
    return max(promoted, default=None)


def _drive_serving(plan: _Plan) -> int | None:
    """Keeps the desired version serving in the desired shape; rolls back what fails to start.

    Three cases are told apart, because each needs a different answer:

    - what was last seen available (same version, same serving shape) is unavailable now: an
      outage (node drain, registry down, Deployment deleted). Production is `Degraded`; the
      Deployment stays applied (recreated, replica changes applied) and no version is failed;
    - a new version does not become available within the deadline: it fails (`RolloutFailed`)
      and the previous version serves again;
    - a serving-only change (image, replicas, resources) does not become available within the
      deadline: the last available shape serves again and the change is recorded as failed
      (`failedServingHash`) until spec.serving changes.
    """
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
    wanted = serving_hash(plan.spec.serving)
    if plan.failed_serving_hash not in (None, wanted):
        plan.failed_serving_hash = None  # spec.serving changed since: the new shape is tried
    last = plan.last_available
    shape = plan.spec.serving
    if plan.failed_serving_hash is not None and last is not None:
        shape = last.serving
    shape_hash = serving_hash(shape)
    if (
        serving is not None
        and serving.version == desired
        and serving.available
        and serving.serving_hash in (None, shape_hash)
    ):
        _complete_rollout(plan, desired)
        if last is None or (last.version, last.serving_hash) != (desired, shape_hash):
            last = ServedShape(
                version=desired, serving_hash=shape_hash, serving=shape, available_at=plan.now
            )
            plan.last_available = last
        _deploy(plan, desired, shape)
        return desired
    if last is not None and (last.version, last.serving_hash) == (desired, shape_hash):
        # What served before is what is wanted and it is unavailable: an outage, not a rollout.
        plan.rollout = None
        plan.degraded = (
            "the serving Deployment is missing: recreated"
            if serving is None
            else f"v{desired} is unavailable ({serving.ready_replicas} pods ready)"
        )
        _deploy(plan, desired, shape)
        return desired
    rollout = plan.rollout
    if rollout is None or (rollout.version, rollout.serving_hash) != (desired, shape_hash):
        healthy = serving is not None and serving.available
        if last is not None and last.version == desired:
            # Only the shape changes: it can be blamed (and rolled back) only when what it
            # replaces was available; during an outage it is applied and waited for.
            previous = desired if healthy else None
        else:
            current = serving.version if serving is not None and healthy else plan.production
            previous = current if current != desired else None
        rollout = Rollout(
            version=desired,
            previous_version=previous,
            started_at=plan.now,
            serving_hash=shape_hash,
        )
        plan.rollout = rollout
    deadline = timedelta(seconds=plan.spec.serving.rollout_deadline_seconds)
    if plan.now - rollout.started_at <= deadline:
        _deploy(plan, desired, shape)
        return desired
    previous = rollout.previous_version
    if previous is None:
        # Nothing that was available to go back to: keep applying, say why it does not serve.
        plan.overdue = f"v{desired} not available within {deadline.seconds}s" + (
            "; what served before was unavailable too" if plan.production is not None else ""
        )
        if plan.production is not None:
            plan.degraded = plan.overdue
        _deploy(plan, desired, shape)
        return desired
    plan.rollout = None
    if previous == desired and last is not None:
        plan.failed_serving_hash = shape_hash
        message = (
            f"the serving change ({_describe_shape(shape)}) was not available within "
            f"{deadline.seconds}s; v{desired} serves again as it was at "
            f"{last.available_at.isoformat()} ({_describe_shape(last.serving)})"
        )
        plan.event("Warning", "RolledBack", message, desired)
        _deploy(plan, desired, last.serving)
        return desired
    plan.update(
        desired,
        phase="Failed",
        reason="RolloutFailed",
        message=f"not available within {deadline.seconds}s; rolled back to v{previous}",
    )
    plan.event(
        "Warning",
        "RolledBack",
        f"v{desired} did not become available within {deadline.seconds}s; "
        f"serving v{previous} again",
        desired,
    )
    back = last.serving if last is not None and last.version == previous else plan.spec.serving
    _deploy(plan, previous, back)
    return previous


def _deploy(plan: _Plan, number: int, serving: Serving) -> None:
    """Deploy `number` in the shape `serving` (spec.serving, or the last available one)."""
    shape = serving_shape(
        plan.mc, version=number, artifact_uri=_artifacts(plan, number), serving=serving
    )
    plan.actions.append(Deploy(shape))


def _describe_shape(serving: Serving) -> str:
    resources = serving.resources
    return (
        f"image {serving.image or 'default'}, {serving.replicas} replicas, "
        f"cpu {resources.cpu}, memory {resources.memory}, gpus {resources.gpus}"
    )


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
    production = plan.production
    in_flight = plan.in_flight()
    awaiting = sorted(n for n, s in plan.statuses.items() if s.phase == "AwaitingApproval")
    rolling = plan.rollout is not None and plan.overdue is None
    if not plan.spec.serving.enabled:
        served = production is not None
    elif serving is None or production is None:
        served = False
    elif serving.available and serving.version == production:
        served = True
    else:
        # A rolling update keeps the old pods until the new ones are available (maxUnavailable
        # 0): production still serves while a rollout within its deadline has ready pods.
        served = rolling and serving.ready_replicas > 0
    stalled_reason, stalled_message = _stalled(plan, served=served, busy=bool(in_flight) or rolling)
    # Reconciling is the work a spec change asked for (kstatus: InProgress). The operator's own
    # drift retrain is shown by the Training condition and leaves Ready as it is.
    generation_work = [n for n in in_flight if plan.specs[n].trigger != "Drift"]
    own_rollout = (
        rolling
        and plan.rollout is not None
        and plan.specs[plan.rollout.version].trigger == "Drift"
        and plan.last_available is not None
        and plan.rollout.serving_hash == plan.last_available.serving_hash
    )
    reconciling = stalled_reason is None and (
        bool(generation_work) or (rolling and not own_rollout)
    )
    phase: CustomizationPhase
    if stalled_reason:
        phase = "Failed"
    elif in_flight:
        phase = "Training"
    elif rolling:
        phase = "RollingOut"
    elif plan.degraded is not None:
        phase = "Degraded"
    elif awaiting:
        phase = "AwaitingApproval"
    elif served:
        phase = "Ready"
    else:
        phase = "Pending"
    conditions = _conditions(
        plan,
        phase=phase,
        stalled=(stalled_reason, stalled_message),
        reconciling=reconciling,
        served=served,
        in_flight=in_flight,
        awaiting=awaiting,
    )
    return ModelCustomizationStatus(
        observed_generation=plan.mc.metadata.generation,
        conditions=conditions,
        phase=phase,
        production_version=production,
        candidate_version=max([*in_flight, *awaiting], default=None),
        latest_version=plan.latest,
        headline_metric=plan.statuses[production].headline_metric if production else None,
        endpoint=serving.endpoint if serving is not None and plan.spec.serving.enabled else None,
        training_hash=plan.specs[plan.latest].training_hash if plan.latest in plan.specs else None,
        drift=plan.drift if plan.drift and plan.drift.version == production else None,
        retraining=plan.ledger,
        rollout=plan.rollout,
        trainer_start_deadline=min(plan.start_deadlines, default=None),
        last_available=plan.last_available if plan.spec.serving.enabled else None,
        failed_serving_hash=plan.failed_serving_hash if plan.spec.serving.enabled else None,
    )


def _stalled(plan: _Plan, *, served: bool, busy: bool) -> tuple[str | None, str]:
    """Why the customization cannot progress without a person, and what to do; (None, "") if not.

    A failed serving change stalls even while the last available shape serves: the spec asks for
    something the operator could not make available; so does a version a spec change asked for
    (trigger Initial or SpecChange) that failed or was rejected. An outage of what served is
    `Degraded`, never Stalled: it heals without a spec change.
    """
    if plan.failed_serving_hash is not None:
        last = plan.last_available
        return "RolloutFailed", (
            "spec.serving did not become available within "
            f"{plan.spec.serving.rollout_deadline_seconds}s and was rolled back"
            + (f"; v{last.version} serves as before" if last else "")
            + "; fix or revert spec.serving"
        )
    if plan.overdue is not None and plan.production is None:
        return "RolloutFailed", (
            f"{plan.overdue}; the Deployment stays applied: fix spec.serving (image, resources) "
            "or the cluster and it rolls out"
        )
    latest = plan.phase(plan.latest)
    awaiting = any(s.phase == "AwaitingApproval" for s in plan.statuses.values())
    spec = plan.specs.get(plan.latest)
    # What a spec change asked for failed: stalled even while an older version serves. A drift
    # retrain is the operator's own work: its failure shows on the Training condition only.
    asked = spec is not None and spec.trigger != "Drift"
    if (served or busy) and not asked:
        return None, ""
    if not (served or busy) and plan.pin_problem:
        return "PinnedVersionUnavailable", plan.pin_problem
    status = plan.statuses.get(plan.latest)
    if latest == "Failed" and status is not None and status.reason != "Superseded":
        return status.reason or "TrainingFailed", status.message or ""
    if latest == "Rejected" and not awaiting and status is not None:
        return "GatesFailed", status.message or ""
    return None, ""


def _conditions(
    plan: _Plan,
    *,
    phase: str,
    stalled: tuple[str | None, str],
    reconciling: bool,
    served: bool,
    in_flight: list[int],
    awaiting: list[int],
) -> list[Condition]:
    """The kstatus conditions (Ready, Reconciling, Stalled) and the domain ones.

    Documented in docs/architecture.md ("Conditions"); the Argo CD and Flux health checks match
    these exact types and reasons.
    """
    previous = plan.previous.conditions
    conditions: list[Condition] = list(previous)
    generation = plan.mc.metadata.generation
    production = plan.production
    stalled_reason, stalled_message = stalled

    def put(type_: ConditionType, status: bool | None, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type_, status, reason, message, now=plan.now, generation=generation
        )

    if stalled_reason is not None:
        conditions = stalled_conditions(
            conditions, stalled_reason, stalled_message, now=plan.now, generation=generation
        )
    else:
        ready = served and not reconciling
        if ready:
            reason, message = "Serving", f"v{production} is serving"
            if plan.pin_problem:
                message += f"; {plan.pin_problem}"
        else:
            reason, message = phase, _phase_message(plan, phase)
        put("Ready", ready, reason, message)
        put(
            "Reconciling",
            reconciling,
            phase if reconciling else "Idle",
            _phase_message(plan, phase) if reconciling else "nothing in progress",
        )
        put("Stalled", False, "AsExpected", "")
    was_degraded = any(c.type == "Degraded" and c.status == "True" for c in previous)
    if plan.degraded is not None:
        put("Degraded", True, "ServingUnavailable", plan.degraded)
        if not was_degraded:
            plan.event(
                "Warning",
                "Degraded",
                f"production is unavailable: {plan.degraded}; the operator keeps its Deployment "
                "applied",
                production,
            )
    else:
        put("Degraded", False, "AsExpected", "")
        if was_degraded and served:
            plan.event("Normal", "Recovered", f"v{production} is available again", production)
    candidates = ", ".join(f"v{n}" for n in in_flight)
    put(
        "Training",
        bool(in_flight),
        "Training" if in_flight else "Idle",
        f"training {candidates}" if in_flight else "no version in training",
    )
    put(
        "AwaitingApproval",
        bool(awaiting),
        "AwaitingApproval" if awaiting else "Idle",
        f"{', '.join(f'v{n}' for n in awaiting)} passed the gates; approve with the annotation "
        f"{APPROVAL_ANNOTATION}=true or spec.serving.pinnedVersion"
        if awaiting
        else "no version awaits approval",
    )
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
        "Degraded": plan.degraded or "production is unavailable",
        "Pending": "waiting for a version to serve",
        "Ready": "serving",
    }.get(phase, phase)
