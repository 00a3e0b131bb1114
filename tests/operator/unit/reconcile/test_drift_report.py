"""The `/drift` reply is checked: a malformed one is logged and ignored, a good one is read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from bespoke_operator.reconcile import DriftReport, drift_report

GOOD: dict[str, Any] = {
    "version": 3,
    "checkedAt": "2026-12-04T10:00:00Z",
    "windowRows": 500,
    "datasetDrift": True,
    "driftShare": 0.75,
    "method": "auto",
    "features": {"length": 0.01},
    "driftedFeatures": ["length", "embeddings"],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_a_good_reply_is_read() -> None:
    assert drift_report(GOOD) == DriftReport(
        version=3,
        checked_at=datetime(2026, 12, 4, 10, 0, tzinfo=UTC),
        drift_share=0.75,
        dataset_drift=True,
        window_rows=500,
        drifted_features=("length", "embeddings"),
    )


def test_a_reply_before_the_first_reading_is_no_reading_and_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert drift_report(_with(checkedAt=None, driftShare=0)) is None
    assert caplog.records == []


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ([GOOD], "reply"),
        ("drifted", "reply"),
        (None, "reply"),
        (_with(driftShare={"value": 0.7}), "driftShare"),
        (_with(driftShare=float("nan")), "driftShare"),
        (_with(driftShare=float("inf")), "driftShare"),
        (_with(driftShare=1.5), "driftShare"),
        (_with(driftShare="0.7x"), "driftShare"),
        (_with(version="3"), "version"),
        (_with(version=True), "version"),
        (_with(version=0), "version"),
        ({k: v for k, v in GOOD.items() if k != "version"}, "version"),
        (_with(checkedAt="yesterday"), "checkedAt"),
        (_with(checkedAt="2026-12-04T10:00:00"), "checkedAt"),  # no zone: cannot be compared
        (_with(datasetDrift="yes"), "datasetDrift"),
        (_with(windowRows=-1), "windowRows"),
        (_with(windowRows=2.5), "windowRows"),
        (_with(driftedFeatures="length"), "driftedFeatures"),
        (_with(driftedFeatures=[1, 2]), "driftedFeatures"),
        (_with(driftedFeatures=["f"] * 1000), "driftedFeatures"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_malformed_reply_is_logged_and_ignored(
    payload: object, names: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bespoke_operator.reconcile.drift_report"):
        assert drift_report(payload) is None
    [record] = caplog.records
    assert "Ignoring a malformed /drift reply" in record.getMessage()
    assert names in record.getMessage()
