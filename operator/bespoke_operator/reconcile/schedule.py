"""When a customization next needs a periodic reconcile (events drive everything else).

Child events (a trainer finished, a rollout progressed, a version approved) reconcile at once,
so the periodic pass exists only for what no event announces: the deadlines `decide` keeps (a
rollout's, and a trainer pod's start-up deadline; a trainer's run time is the Job's own
`activeDeadlineSeconds`), a drift reading falling due, and healing a missed event. A rollout is
checked every interval, a trainer pod not yet started at its start-up deadline, a served
customization when its next drift reading is due, everything else (training included) at the
resync interval. At 1,000 customizations this is the difference between 33 full reconciles a
second and a handful.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bespoke_operator.api import ModelCustomization, ModelCustomizationStatus

__all__ = ["drift_reading_due", "next_check"]


def next_check(
    mc: ModelCustomization | None,
    status: ModelCustomizationStatus,
    *,
    now: datetime,
    interval: timedelta,
    resync: timedelta,
) -> datetime:
    """The time of the next periodic reconcile, never sooner than `interval` from `now`."""
    if status.rollout is not None or status.phase == "RollingOut":
        return now + interval
    due = now + resync
    if status.trainer_start_deadline is not None:
        # A trainer pod that cannot start fails at its start-up deadline: checked then.
        due = min(due, max(status.trainer_start_deadline, now + interval))
    drift_due = drift_reading_due(mc, status, now=now) if mc is not None else None
    if drift_due is not None:
        due = min(due, max(drift_due, now + interval))
    return due


def drift_reading_due(
    mc: ModelCustomization, status: ModelCustomizationStatus | None, *, now: datetime
) -> datetime | None:
    """When the next drift reading is due (`now` if none was taken); None when none is read.

    The one rule for both the schedule and the runtime that reads `/drift`: readings are taken
    while monitoring is on and something serves, one monitoring interval after the last.
    """
    if not mc.spec.monitoring.enabled or status is None or not status.endpoint:
        return None
    if status.drift is None:
        return now
    return status.drift.checked_at + timedelta(seconds=mc.spec.monitoring.interval_seconds)
