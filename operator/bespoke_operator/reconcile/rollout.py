"""Serving: which version serves in which shape, rollouts, rollbacks and outages."""

from __future__ import annotations

from datetime import timedelta

from bespoke_operator.api.customization import Rollout
from bespoke_operator.api.serving import Serving
from bespoke_operator.api.status import ServedShape
from bespoke_operator.reconcile.actions import Deploy, Undeploy
from bespoke_operator.reconcile.hashing import serving_hash
from bespoke_operator.reconcile.plan import Plan, artifacts
from bespoke_operator.reconcile.serving import serving_shape, unservable

__all__ = ["complete_rollout", "drive_serving"]


def _desired_version(plan: Plan) -> int | None:
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


def drive_serving(plan: Plan) -> int | None:
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
            complete_rollout(plan, unserved)
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
        complete_rollout(plan, desired)
        if last is None or (last.version, last.serving_hash) != (desired, shape_hash):
            last = ServedShape(
                version=desired, serving_hash=shape_hash, serving=shape, available_at=plan.now
            )
            plan.last_available = last
        _deploy(plan, desired, shape)
        return desired
    seconds = plan.spec.serving.rollout_deadline_seconds
    deadline = timedelta(seconds=seconds)
    if last is not None and (last.version, last.serving_hash) == (desired, shape_hash):
        rollout = plan.rollout
        if (
            rollout is not None
            and (rollout.version, rollout.serving_hash) == (desired, shape_hash)
            and plan.now - rollout.started_at <= deadline
        ):
            # A rollback on its way back (old pods ready, the rolled-back ones not yet).
            _deploy(plan, desired, shape)
            return desired
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
            # A new version replacing one that is itself down (no pod ready) cannot be blamed
            # either: there is nothing healthy to go back to, so it is applied and waited for.
            # Mid-rollout, the ready pods are production's (maxUnavailable 0).
            if serving is None or not (healthy or serving.ready_replicas > 0):
                current = None
            else:
                current = serving.version if healthy else plan.production
            previous = current if current != desired else None
        rollout = Rollout(
            version=desired,
            previous_version=previous,
            started_at=plan.now,
            serving_hash=shape_hash,
        )
        plan.rollout = rollout
    if plan.now - rollout.started_at <= deadline:
        _deploy(plan, desired, shape)
        return desired
    previous = rollout.previous_version
    if previous is None:
        # Nothing that was available to go back to: keep applying, say why it does not serve.
        plan.overdue = f"v{desired} not available within {seconds}s" + (
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
            f"{seconds}s; v{desired} serves again as it was at "
            f"{last.available_at.isoformat()} ({_describe_shape(last.serving)})"
        )
        plan.event("Warning", "RolledBack", message, desired)
        _roll_back(plan, desired, last.serving)
        return desired
    plan.update(
        desired,
        phase="Failed",
        reason="RolloutFailed",
        message=f"not available within {seconds}s; rolled back to v{previous}",
    )
    plan.event(
        "Warning",
        "RolledBack",
        f"v{desired} did not become available within {seconds}s; serving v{previous} again",
        desired,
    )
    back = last.serving if last is not None and last.version == previous else plan.spec.serving
    _roll_back(plan, previous, back)
    return previous


def _roll_back(plan: Plan, number: int, serving: Serving) -> None:
    """Deploys what served before, tracked as a rollout of its own within the deadline.

    The rolled-back Deployment takes a while to settle (its old pods serve meanwhile): without
    a rollout the next pass would read it as an outage of production.
    """
    plan.rollout = Rollout(
        version=number,
        previous_version=None,
        started_at=plan.now,
        serving_hash=serving_hash(serving),
    )
    _deploy(plan, number, serving)


def _deploy(plan: Plan, number: int, serving: Serving) -> None:
    """Deploy `number` in the shape `serving` (spec.serving, or the last available one)."""
    shape = serving_shape(
        plan.mc, version=number, artifact_uri=artifacts(plan, number), serving=serving
    )
    plan.actions.append(Deploy(shape))


def _describe_shape(serving: Serving) -> str:
    resources = serving.resources
    return (
        f"image {serving.image or 'default'}, {serving.replicas} replicas, "
        f"cpu {resources.cpu}, memory {resources.memory}, gpus {resources.gpus}"
    )


def complete_rollout(plan: Plan, number: int) -> None:
    rollout, last = plan.rollout, plan.last_available
    returning = (
        rollout is not None
        and last is not None
        and (rollout.version, rollout.serving_hash) == (last.version, last.serving_hash)
    )
    if plan.spec.serving.enabled and (
        plan.production != number or (rollout is not None and not returning)
    ):
        plan.event("Normal", "RolledOut", f"v{number} is serving")
    status = plan.statuses[number]
    if plan.production != number and status.phase not in ("Promoted", "Retired"):
        # Only spec.serving.pinnedVersion makes a version production that did not pass.
        plan.event(
            "Warning",
            "GatesBypassed",
            f"v{number} is production by spec.serving.pinnedVersion although it is "
            f"{status.phase} ({status.reason}): its gates or approval were bypassed",
            number,
        )
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
