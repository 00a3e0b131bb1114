"""The customization's status and conditions (kstatus and domain ones), and each version's Ready."""

from __future__ import annotations

from bespoke_operator.api import Condition, ModelCustomizationStatus, ModelVersionStatus
from bespoke_operator.api.status import CustomizationPhase
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.conditions import ConditionType, set_condition, stalled_conditions
from bespoke_operator.reconcile.plan import Plan

__all__ = ["customization_status", "version_conditions"]


def version_conditions(plan: Plan, status: ModelVersionStatus) -> ModelVersionStatus:
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


def customization_status(plan: Plan) -> ModelCustomizationStatus:
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
    # The operator's own rollouts: a drift retrain's, and a rollback to what last served.
    own_rollout = (
        rolling
        and plan.rollout is not None
        and plan.last_available is not None
        and plan.rollout.serving_hash == plan.last_available.serving_hash
        and (
            plan.specs[plan.rollout.version].trigger == "Drift"
            or plan.rollout.version == plan.last_available.version
        )
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


def _stalled(plan: Plan, *, served: bool, busy: bool) -> tuple[str | None, str]:
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
    plan: Plan,
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
        f"{APPROVAL_ANNOTATION}=true or spec.evaluation.approvedVersions"
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


def _phase_message(plan: Plan, phase: str) -> str:
    return {
        "Training": f"training v{plan.latest}",
        "RollingOut": f"rolling out v{plan.rollout.version}" if plan.rollout else "rolling out",
        "AwaitingApproval": "a candidate awaits approval",
        "Degraded": plan.degraded or "production is unavailable",
        "Pending": "waiting for a version to serve",
        "Ready": "serving",
    }.get(phase, phase)
