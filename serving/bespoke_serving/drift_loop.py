"""The periodic drift computation that runs in the service's background, never per request.

The statistics run in a separate process by default: Evidently and pandas hold the GIL for most
of a computation, which would otherwise stall the serving threads for that long.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

import pandas as pd

from bespoke_monitor import DriftCollector, DriftMethod, DriftResult, drift_between, featurize
from bespoke_serving.capture import TrafficCapture

__all__ = ["DriftLoop"]

log = logging.getLogger(__name__)


class DriftLoop:
    """Every interval, compares the capture window with the version's reference data."""

    def __init__(
        self,
        *,
        reference: pd.DataFrame,
        vocabulary: Collection[str],
        capture: TrafficCapture,
        collector: DriftCollector,
        version: int,
        labels: Sequence[str],
        method: DriftMethod,
        threshold: float,
        interval_seconds: float,
        min_rows: int,
        isolated: bool = True,
    ) -> None:
        self._vocabulary = frozenset(vocabulary)
        # Reference features are computed once per version, not per run.
        self._reference = featurize(reference, self._vocabulary)
        self._capture = capture
        self._collector = collector
        self._version = version
        self._labels = list(labels)
        self._method: DriftMethod = method
        self._threshold = threshold
        self._interval = interval_seconds
        self._min_rows = min_rows
        self._latest: DriftResult | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: Executor | None = None
        if isolated:
            # spawn, not fork: the serving process has threads (and maybe torch state) to not copy.
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )

    @property
    def latest(self) -> DriftResult | None:
        """The last reading, or None before the window first had enough rows."""
        with self._lock:
            return self._latest

    def start(self) -> None:
        """Run in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="bespoke-drift", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish and wait a little for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def run_once(self) -> DriftResult | None:
        """One computation now; None while the window is smaller than `min_rows`."""
        window = self._capture.snapshot()
        self._collector.set_window_rows(len(window))
        if len(window) < self._min_rows:
            log.info("Drift skipped: window has %d of %d rows", len(window), self._min_rows)
            return None
        compute = functools.partial(
            drift_between,
            self._reference,
            featurize(window, self._vocabulary),
            method=self._method,
            threshold=self._threshold,
            labels=self._labels,
            version=self._version,
        )
        executor = self._executor
        result = compute() if executor is None else executor.submit(compute).result()
        with self._lock:
            self._latest = result
        self._collector.update(result)
        log.info(
            "Drift computed: share %.2f, detected %s, %d rows",
            result.drift_share,
            result.dataset_drift,
            result.window_rows,
        )
        return result

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:
                # A failed reading must not end the loop: the next interval tries again.
                log.exception("Drift computation failed")
