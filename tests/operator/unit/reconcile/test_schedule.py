"""The periodic-reconcile schedule: busy customizations often, settled ones rarely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from bespoke_operator.api import ModelCustomization, ModelCustomizationStatus
from bespoke_operator.reconcile.schedule import next_check
from tests.operator.unit.reconcile.world import EXAMPLE

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=30)
RESYNC = timedelta(seconds=300)


def _mc(monitoring: dict[str, Any] | None = None) -> ModelCustomization:
    document = yaml.safe_load(EXAMPLE.read_text())
    if monitoring is not None:
        document["spec"]["monitoring"] = monitoring
    return ModelCustomization.model_validate(document)


def _status(**fields: Any) -> ModelCustomizationStatus:
    return ModelCustomizationStatus.model_validate(fields)


def _next(status: ModelCustomizationStatus, mc: ModelCustomization | None = None) -> datetime:
    return next_check(mc or _mc(), status, now=NOW, interval=INTERVAL, resync=RESYNC)


def test_a_rollout_is_checked_every_interval_for_its_deadline() -> None:
    assert _next(_status(phase="RollingOut")) == NOW + INTERVAL
    status = _status(phase="Ready", rollout={"version": 2, "startedAt": "2026-11-28T11:59:00Z"})
    assert _next(status) == NOW + INTERVAL


@pytest.mark.parametrize("phase", ["Pending", "Training"])
def test_training_waits_for_its_job_event_and_is_only_healed_at_the_resync(phase: str) -> None:
    condition = {
        "type": "Reconciling",
        "status": "True",
        "reason": "Training",
        "message": "v1 is training",
        "lastTransitionTime": "2026-11-28T11:00:00Z",
    }
    assert _next(_status(phase=phase, conditions=[condition])) == NOW + RESYNC


def test_a_settled_customization_without_serving_waits_for_the_resync() -> None:
    assert _next(_status(phase="Failed")) == NOW + RESYNC
    assert _next(_status(phase="AwaitingApproval")) == NOW + RESYNC


def _served(checked_at: str | None) -> ModelCustomizationStatus:
    drift = (
        None
        if checked_at is None
        else {"version": 1, "share": "0.1", "detected": False, "checkedAt": checked_at}
    )
    return _status(phase="Ready", endpoint="http://tickets-serving.ml.svc:3000", drift=drift)


def test_a_served_customization_is_checked_when_its_drift_reading_is_due() -> None:
    mc = _mc({"enabled": True, "intervalSeconds": 120})
    assert _next(_served("2026-11-28T11:59:00Z"), mc) == NOW + timedelta(seconds=60)


def test_a_drift_reading_long_overdue_is_still_not_sooner_than_one_interval() -> None:
    mc = _mc({"enabled": True, "intervalSeconds": 120})
    assert _next(_served("2026-11-28T09:00:00Z"), mc) == NOW + INTERVAL
    assert _next(_served(None), mc) == NOW + INTERVAL


def test_a_rare_drift_interval_never_delays_the_resync() -> None:
    mc = _mc({"enabled": True, "intervalSeconds": 3600})
    assert _next(_served("2026-11-28T11:59:00Z"), mc) == NOW + RESYNC


def test_monitoring_off_or_an_invalid_spec_waits_for_the_resync() -> None:
    assert _next(_served("2026-11-28T11:59:00Z"), _mc({"enabled": False})) == NOW + RESYNC
    status = _served("2026-11-28T11:59:00Z")
    assert next_check(None, status, now=NOW, interval=INTERVAL, resync=RESYNC) == NOW + RESYNC


def test_a_drift_reading_is_due_one_interval_after_the_last_and_only_while_serving() -> None:
    from bespoke_operator.reconcile.schedule import drift_reading_due

    mc = _mc({"enabled": True, "intervalSeconds": 600})
    endpoint = "http://sentiment-serving.ml.svc:3000"
    assert drift_reading_due(mc, _status(phase="Training"), now=NOW) is None
    assert drift_reading_due(mc, None, now=NOW) is None
    assert drift_reading_due(mc, _status(endpoint=endpoint), now=NOW) == NOW
    taken = {"version": 1, "share": "0.1", "detected": False, "checkedAt": "2026-11-28T11:55:00Z"}
    due = drift_reading_due(mc, _status(endpoint=endpoint, drift=taken), now=NOW)
    assert due == datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
    off = _mc({"enabled": False})
    assert drift_reading_due(off, _status(endpoint=endpoint), now=NOW) is None


def test_a_trainer_pod_not_yet_started_is_checked_at_its_start_up_deadline() -> None:
    soon = NOW + timedelta(seconds=120)
    assert _next(_status(phase="Training", trainerStartDeadline=soon.isoformat())) == soon
    past = NOW - timedelta(seconds=5)  # never sooner than the interval
    assert _next(_status(phase="Training", trainerStartDeadline=past.isoformat())) == NOW + INTERVAL
    later = NOW + RESYNC * 2  # the resync still heals in between
    assert _next(_status(phase="Training", trainerStartDeadline=later.isoformat())) == NOW + RESYNC
