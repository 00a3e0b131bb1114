"""When a customization next needs a periodic reconcile (events drive everything else).

Child events (a trainer finished, a rollout progressed, a version approved) reconcile at once,
so the periodic pass exists only for what no event announces: a rollout deadline passing (the
only deadline `decide` keeps; a trainer's is the Job's own `activeDeadlineSeconds`), a drift
reading falling due, and healing a missed event. A rollout is checked every interval, a served
customization when its next drift reading is due, everything else (training included) at the
resync interval. At 1,000 customizations this is the difference between 33 full reconciles a
second and a handful.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bespoke_operator.api import ModelCustomization, ModelCustomizationStatus

__all__ = ["next_check"]


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
    if mc is not None and mc.spec.monitoring.enabled and status.endpoint:
        reading = status.drift.checked_at if status.drift else None
        drift_due = (
            reading + timedelta(seconds=mc.spec.monitoring.interval_seconds) if reading else now
        )
        due = min(due, max(drift_due, now + interval))
    return due
