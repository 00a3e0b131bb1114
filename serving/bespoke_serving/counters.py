"""Counters of the work the service refuses or drops on purpose, exported on `/metrics`.

`bespoke_requests_shed_total{reason}` counts requests answered 503 under load (`concurrency`:
more than `BESPOKE_MAX_CONCURRENT_REQUESTS` in the service; `queue`: the micro-batcher's queue
full) and `bespoke_capture_dropped_total` the captured records dropped because the capture
thread fell behind. Labels are bounded: the served version's namespace, customization and
version, and for shedding one of two reasons.

A custom collector, like the drift gauges (`bespoke_monitor.gauges`): under `bentoml serve`
prometheus-client runs in multiprocess mode, where `Counter` objects would be exported a second
time by BentoML's own collector. The service runs one worker per process, so plain integers
under a lock are exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Final, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COUNTERS", "SHED_REASONS", "ServingCounters", "ShedReason"]

ShedReason = Literal["concurrency", "queue"]
SHED_REASONS: Final[tuple[ShedReason, ...]] = ("concurrency", "queue")
_LABELS: Final = ("namespace", "customization", "version")


class ServingCounters(Collector):
    """Requests shed and capture records dropped by this process, from zero at start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shed: dict[ShedReason, int] = dict.fromkeys(SHED_REASONS, 0)
        self._dropped: Callable[[], int] = lambda: 0
        self._labels: tuple[str, str, str] = ("", "", "")
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def bind(
        self, namespace: str, customization: str, version: int, dropped: Callable[[], int]
    ) -> None:
        """Label the series with the served version; `dropped` reads the capture's count."""
        with self._lock:
            self._labels = (namespace, customization, str(version))
            self._dropped = dropped

    def shed(self, reason: ShedReason) -> None:
        """One request answered 503 for `reason`."""
        with self._lock:
            self._shed[reason] += 1

    def exposition(self) -> str:
        """The text exposition format of these counters only."""
        return generate_latest(self.registry).decode("utf-8")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            labels, shed, dropped = self._labels, dict(self._shed), self._dropped
        requests = CounterMetricFamily(
            "bespoke_requests_shed",
            "Requests answered 503 under load, by reason (concurrency limit or full queue)",
            labels=[*_LABELS, "reason"],
        )
        for reason in SHED_REASONS:
            requests.add_metric([*labels, reason], shed[reason])
        yield requests
        records = CounterMetricFamily(
            "bespoke_capture_dropped",
            "Captured traffic records dropped because the capture queue was full",
            labels=list(_LABELS),
        )
        records.add_metric(list(labels), dropped())
        yield records


#: This process's counters (one service worker per process).
COUNTERS: Final = ServingCounters()
