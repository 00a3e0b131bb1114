"""The reconcile core: from a customization and what was observed, the actions and the status.

`decide` does no I/O and reads no clock: everything comes in through `Observed`, so the same
function drives the Kubernetes runtime, the local runtime and table-driven tests. It is
level-triggered: given the same inputs it returns the same answer, and every action is safe to
apply twice.
"""

from __future__ import annotations

from bespoke_operator.api import ModelCustomization
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile.actions import SetVersionStatus
from bespoke_operator.reconcile.history import prune_history
from bespoke_operator.reconcile.observed import Observed
from bespoke_operator.reconcile.plan import Decision, Plan, artifact_uri, version_name
from bespoke_operator.reconcile.rollout import drive_serving
from bespoke_operator.reconcile.status import customization_status, version_conditions
from bespoke_operator.reconcile.training import (
    PERMANENT_EXIT_CODES,
    apply_drift,
    ensure_current_version,
    progress_training,
    stop_orphaned_trainers,
)

__all__ = [
    "APPROVAL_ANNOTATION",
    "PERMANENT_EXIT_CODES",
    "Decision",
    "artifact_uri",
    "decide",
    "version_name",
]


def decide(mc: ModelCustomization, observed: Observed) -> Decision:
    """The actions that move the customization toward its spec, and its new status."""
    plan = Plan(mc, observed)
    ensure_current_version(plan)
    stop_orphaned_trainers(plan)
    apply_drift(plan)
    progress_training(plan)
    desired = drive_serving(plan)
    prune_history(plan, desired)
    for number, decided in sorted(plan.statuses.items()):
        status = version_conditions(plan, decided)
        if status != plan.seen.get(number):
            plan.actions.append(SetVersionStatus(number, status))
    # The status first: a condition that flips (Degraded) adds its event to the actions.
    new_status = customization_status(plan)
    return Decision(tuple(plan.actions), new_status)
