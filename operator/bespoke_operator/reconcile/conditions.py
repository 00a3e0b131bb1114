"""Condition bookkeeping: `lastTransitionTime` moves only when a condition's status flips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from bespoke_operator.api import Condition, ModelCustomizationStatus

__all__ = [
    "ConditionStatus",
    "ConditionType",
    "set_condition",
    "stalled_conditions",
    "stalled_status",
]

ConditionStatus = Literal["True", "False", "Unknown"]
#: The conditions the operator writes: kstatus' three (Ready, Reconciling, Stalled), then the
#: domain's (a trained latest version, a production version, serving available, drift, the
#: operator's own retrain, production unavailable, a version awaiting approval).
ConditionType = Literal[
    "Ready",
    "Reconciling",
    "Stalled",
    "Trained",
    "Promoted",
    "Serving",
    "Drifted",
    "Training",
    "Degraded",
    "AwaitingApproval",
]


def set_condition(
    conditions: Sequence[Condition],
    type_: ConditionType,
    status: bool | None,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """The condition list with `type_` set; other conditions keep their place and values."""
    wanted: ConditionStatus = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == wanted else now
    updated = Condition(
        type=type_,
        status=wanted,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


def stalled_conditions(
    conditions: Sequence[Condition],
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Stalled=True with `reason`, Ready=False with the same, and Reconciling=False.

    Every failure path goes through here: kstatus reads Reconciling before Stalled, so a stale
    Reconciling=True beside Stalled=True would read as InProgress, not Failed.
    """
    updated = list(conditions)
    kstatus: tuple[tuple[ConditionType, bool], ...] = (
        ("Stalled", True),
        ("Ready", False),
        ("Reconciling", False),
    )
    for type_, status in kstatus:
        updated = set_condition(
            updated, type_, status, reason, message, now=now, generation=generation
        )
    return updated


def stalled_status(
    previous: ModelCustomizationStatus | None,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> ModelCustomizationStatus:
    """The status of a customization that cannot progress until a person acts.

    `Stalled=True` and `Ready=False` with `reason`, `Reconciling=False`, phase Failed; everything
    else as it was. The one shape for an invalid spec (`InvalidSpec`) and for a pass the API
    refuses for good (`ApiRequestFailed`, e.g. a missing RBAC permission).
    """
    status = previous or ModelCustomizationStatus()
    conditions = stalled_conditions(
        status.conditions, reason, message, now=now, generation=generation
    )
    return status.model_copy(
        update={"observed_generation": generation, "conditions": conditions, "phase": "Failed"}
    )
