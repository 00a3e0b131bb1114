"""Version history: the oldest versions beyond spec.versionHistoryLimit are deleted."""

from __future__ import annotations

from bespoke_operator.reconcile.actions import DeleteVersion
from bespoke_operator.reconcile.plan import Plan

__all__ = ["prune_history"]


def prune_history(plan: Plan, desired: int | None) -> None:
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
