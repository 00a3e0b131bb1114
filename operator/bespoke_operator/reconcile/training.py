"""Training: new versions on spec change or drift, trainer attempts, failures and retries, gates."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from bespoke_operator.api import ModelVersionSpec, headline_metric
from bespoke_operator.api._base import parse_decimal
from bespoke_operator.api.customization import DriftReading, RetrainLedger
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.actions import StartTrainer, StopTrainer
from bespoke_operator.reconcile.gates import evaluate_gates, format_number
from bespoke_operator.reconcile.hashing import training_hash
from bespoke_operator.reconcile.observed import RUN_FAILURES, TrainerRun, TrainerSummary
from bespoke_operator.reconcile.plan import Plan, artifacts
from bespoke_operator.reconcile.trainer_config import trainer_config

__all__ = [
    "PERMANENT_EXIT_CODES",
    "apply_drift",
    "ensure_current_version",
    "progress_training",
    "stop_orphaned_trainers",
]

#: Trainer exit codes a retry cannot fix: invalid config, invalid data, out of memory, model not
#: found (see bespoke_trainer.errors; the Job fails fast on them too).
PERMANENT_EXIT_CODES: Final = frozenset({2, 3, 5, 7})


_OOM_HINT: Final = (
    "; lower training.batchSize (raise training.gradientAccumulationSteps to keep the "
    "effective batch), set training.gradientCheckpointing: true, or raise "
    "training.resources.memory (or use a larger GPU)"
)


def stop_orphaned_trainers(plan: Plan) -> None:
    """A trainer still running for a version that no longer exists (deleted by hand) is stopped."""
    orphaned = {
        run.version
        for run in plan.observed.trainer_runs
        if run.state == "Running" and run.version not in plan.specs
    }
    plan.actions.extend(StopTrainer(number) for number in sorted(orphaned))


def ensure_current_version(plan: Plan) -> None:
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


def apply_drift(plan: Plan) -> None:
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


def progress_training(plan: Plan) -> None:
    for number in plan.in_flight():
        _progress_version(plan, number)
    for number, status in plan.statuses.items():
        if status.phase == "AwaitingApproval" and number in plan.observed.approved_versions:
            plan.update(number, phase="Promoted", reason="Approved", message="approved")
            plan.event("Normal", "Approved", f"v{number} approved for production")


def _progress_version(plan: Plan, number: int) -> None:
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
        summary.exit_code in PERMANENT_EXIT_CODES or reason in RUN_FAILURES
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


def _cannot_start(plan: Plan, number: int, run: TrainerRun) -> bool:
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


def _run_failure_addressed(plan: Plan, latest: ModelVersionSpec) -> bool:
    """Whether the latest version failed in a way a change of where it runs fixes, now changed."""
    status = plan.statuses.get(latest.version)
    if status is None or status.phase != "Failed" or status.reason not in RUN_FAILURES:
        return False
    before = latest.snapshot
    return (before.training, before.storage) != (plan.spec.training, plan.spec.storage)


def _start(plan: Plan, number: int, attempt: int) -> None:
    spec = plan.specs[number]
    parent = spec.parent_version
    champion = plan.production if plan.production != number else None
    config = trainer_config(
        spec,
        warm_start_uri=artifacts(plan, parent)
        if parent is not None and parent in plan.specs
        else None,
        champion_uri=artifacts(plan, champion) if champion is not None else None,
    )
    plan.actions.append(StartTrainer(number, attempt, config, spec))
    started = plan.statuses[number].started_at or plan.now
    plan.update(
        number, phase="Training", reason="TrainerStarted", attempts=attempt, started_at=started
    )


def _decide_gates(plan: Plan, number: int, summary: TrainerSummary) -> None:
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
            "or spec.evaluation.approvedVersions",
        )
    else:
        plan.event("Normal", "Promoted", f"v{number} promoted: {message}")


def _as_decimals(values: dict[str, float]) -> dict[str, str]:
    """Finite, non-negative metrics as API decimals (every metric Bespoke computes is >= 0)."""
    return {k: format_number(v) for k, v in sorted(values.items()) if math.isfinite(v) and v >= 0}


def _describe(metrics: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in list(metrics.items())[:4]) or "no metrics"
