"""The background drift loop: a low-priority process, and no recomputation without new traffic."""

from __future__ import annotations

import os
import time

import pandas as pd

from bespoke_monitor import DriftCollector
from bespoke_serving.capture import TrafficCapture
from bespoke_serving.drift_loop import CHILD_NICENESS, DriftLoop

WORDS = ["good", "bad", "movie", "food", "service", "great", "awful", "place"]


def _traffic(rows: int, offset: int = 0) -> pd.DataFrame:
    texts = [
        " ".join(WORDS[(i + j + offset) % len(WORDS)] for j in range(3 + i % 5))
        for i in range(rows)
    ]
    return pd.DataFrame(
        {
            "text": texts,
            "prediction": ["positive" if i % 3 else "negative" for i in range(rows)],
            "confidence": [0.6 + 0.3 * ((i * 7) % 10) / 10 for i in range(rows)],
        }
    )


def _loop(capture: TrafficCapture, *, isolated: bool, interval: float) -> DriftLoop:
    return DriftLoop(
        reference=_traffic(200),
        vocabulary=WORDS,
        capture=capture,
        collector=DriftCollector("ns", "c", 1, ["negative", "positive"]),
        version=1,
        labels=["negative", "positive"],
        method="auto",
        threshold=0.5,
        interval_seconds=interval,
        min_rows=50,
        isolated=isolated,
    )


def _submit(capture: TrafficCapture, frame: pd.DataFrame) -> None:
    capture.submit(
        frame["text"].tolist(), frame["prediction"].tolist(), frame["confidence"].tolist()
    )
    assert capture.flush()


def _wait_for_new_reading(loop: DriftLoop, previous: object) -> object:
    for _ in range(600):  # a bound on waiting, not a timing assertion
        latest = loop.latest
        if latest is not None and latest is not previous:
            return latest
        time.sleep(0.05)
    raise AssertionError("no new drift reading")


def test_the_drift_process_runs_at_the_lowest_priority_and_computes() -> None:
    capture = TrafficCapture(500)
    loop = _loop(capture, isolated=True, interval=3600)
    try:
        _submit(capture, _traffic(100, offset=1))
        result = loop.run_once()
        assert result is not None
        assert result.window_rows == 100
        assert result.dataset_drift is False
        executor = loop._executor
        assert executor is not None
        niceness = executor.submit(os.getpriority, os.PRIO_PROCESS, 0).result(timeout=60)
        assert niceness == CHILD_NICENESS
    finally:
        loop.stop()
        capture.close()


def test_the_loop_skips_runs_until_new_traffic_arrives() -> None:
    capture = TrafficCapture(500)
    loop = _loop(capture, isolated=False, interval=0.05)
    try:
        _submit(capture, _traffic(100))
        loop.start()
        first = _wait_for_new_reading(loop, None)
        time.sleep(0.5)  # ten intervals without traffic
        assert loop.latest is first
        _submit(capture, _traffic(60, offset=2))
        second = _wait_for_new_reading(loop, first)
        assert second.window_rows == 160  # type: ignore[attr-defined]
    finally:
        loop.stop()
        capture.close()
