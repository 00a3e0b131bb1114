"""Serving → operator: the `/drift` reply the monitor produces is one the operator reads whole."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bespoke_monitor import compute_drift
from bespoke_operator.reconcile import drift_report
from bespoke_serving.runtime import Runtime
from bespoke_serving.settings import ServingSettings
from tests.monitor.traffic_factory import REFERENCE_WORDS, reference_traffic, shifted_traffic


def test_a_reading_with_planted_drift_is_read_with_its_drifted_features() -> None:
    result = compute_drift(
        reference_traffic(400, seed=1),
        shifted_traffic(400, seed=2),
        vocabulary=REFERENCE_WORDS,
        version=3,
    )
    assert result.drifted_features, "the planted shift drifted no feature"
    report = drift_report(result.payload())
    assert report is not None
    assert (report.version, report.window_rows) == (3, 400)
    assert report.drift_share == pytest.approx(result.drift_share)
    assert report.dataset_drift is result.dataset_drift
    assert list(report.drifted_features) == result.drifted_features


def test_the_reply_before_the_first_reading_is_no_reading_and_no_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # The version's metadata is all a service needs before its model loads.
    (tmp_path / "COMPLETE").touch()
    metadata = {
        "version": 2,
        "task": "text-classification",
        "method": "lora",
        "baseModel": {"uri": "hf://org/base"},
        "labels": ["negative", "positive"],
    }
    (tmp_path / "bespoke-version.json").write_text(json.dumps(metadata))
    runtime = Runtime(ServingSettings(model_uri=str(tmp_path), version=2, drift_enabled=False))
    with caplog.at_level(logging.WARNING):
        assert drift_report(runtime.drift_payload()) is None
    assert "malformed" not in caplog.text
