"""The periodic drift computation that runs in the service's background, never per request.

The statistics run in a separate process by default: Evidently and pandas hold the GIL for most
of a computation, which would otherwise stall the serving threads for that long. That process
runs at the lowest CPU priority (nice 19), so on a busy CPU it takes only time the request path
leaves idle; the reference features and vocabulary are sent to it once, and each run sends
only the raw window and featurizes it there, so the serving process does no drift work beyond
copying the window. A run is skipped when no traffic arrived since the last one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from bespoke_monitor import DriftCollector, DriftMethod, DriftResult, drift_between, featurize
from bespoke_serving.capture import TrafficCapture

__all__ = ["DriftLoop"]

log = logging.getLogger(__name__)

# The drift process's lowest CPU priority, for every thread it has.
CHILD_NICENESS = 19

# What the drift process keeps between runs (set once by `_child_init`).
_child_state: dict[str, object] = {}


def _lower_priority(niceness: int) -> None:
    # On Linux a nice value belongs to each thread; threads started at import (BLAS pools)
    # would otherwise keep the normal priority.
    tasks = Path("/proc/self/task")
    ids = [int(p.name) for p in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in ids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except OSError:
            log.warning("Cannot lower the drift process priority (thread %d)", tid)


def _child_init(
    reference: pd.DataFrame,
    vocabulary: frozenset[str],
    reference_embeddings: np.ndarray | None,
    niceness: int,
) -> None:
    _lower_priority(niceness)
    _child_state["reference"] = reference
    _child_state["vocabulary"] = vocabulary
    _child_state["reference_embeddings"] = reference_embeddings


def _drift(
    reference: pd.DataFrame,
    vocabulary: frozenset[str],
    reference_embeddings: np.ndarray | None,
    window: pd.DataFrame,
    method: DriftMethod,
    threshold: float,
    labels: Sequence[str],
    version: int,
) -> DriftResult:
    current_embeddings = None
    if reference_embeddings is not None and "embedding" in window.columns:
        current_embeddings = np.stack(window["embedding"].tolist())
    return drift_between(
        reference,
        featurize(window, vocabulary),
        method=method,
        threshold=threshold,
        labels=labels,
        version=version,
        reference_embeddings=reference_embeddings,
        current_embeddings=current_embeddings,
    )


def _child_compute(
    window: pd.DataFrame,
    method: DriftMethod,
    threshold: float,
    labels: Sequence[str],
    version: int,
) -> DriftResult:
    reference = cast(pd.DataFrame, _child_state["reference"])
    vocabulary = cast(frozenset[str], _child_state["vocabulary"])
    embeddings = cast(np.ndarray | None, _child_state["reference_embeddings"])
    return _drift(reference, vocabulary, embeddings, window, method, threshold, labels, version)


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
        reference_embeddings: np.ndarray | None = None,
    ) -> None:
        self._vocabulary = frozenset(vocabulary)
        # Reference features are computed once per version, not per run.
        self._reference = featurize(reference, self._vocabulary)
        self._reference_embeddings = reference_embeddings
        self._capture = capture
        self._collector = collector
        self._version = version
        self._labels = list(labels)
        self._method: DriftMethod = method
        self._threshold = threshold
        self._interval = interval_seconds
        self._min_rows = min_rows
        self._latest: DriftResult | None = None
        self._latest_ingested = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: Executor | None = None
        if isolated:
            # spawn, not fork: the serving process has threads (and maybe torch state) to not copy.
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(
                    self._reference,
                    self._vocabulary,
                    reference_embeddings,
                    CHILD_NICENESS,
                ),
            )

    @property
    def latest(self) -> DriftResult | None:
        """The last reading, or None before the window first had enough rows."""
        with self._lock:
            return self._latest

    @property
    def latest_ingested(self) -> int:
        """`TrafficCapture.ingested` when the latest reading's window was taken (-1: none yet)."""
        with self._lock:
            return self._latest_ingested

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
        ingested = self._capture.ingested
        window = self._capture.snapshot()
        self._collector.set_window_rows(len(window))
        if len(window) < self._min_rows:
            log.info("Drift skipped: window has %d of %d rows", len(window), self._min_rows)
            return None
        args = (self._method, self._threshold, self._labels, self._version)
        if self._executor is None:
            result = _drift(
                self._reference, self._vocabulary, self._reference_embeddings, window, *args
            )
        else:
            result = self._executor.submit(_child_compute, window, *args).result()
        with self._lock:
            self._latest = result
            self._latest_ingested = ingested
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
            if self._capture.ingested == self.latest_ingested:
                # No traffic since the last reading: it still holds, and an idle service
                # should not burn CPU recomputing it.
                continue
            try:
                self.run_once()
            except Exception:
                # A failed reading must not end the loop: the next interval tries again.
                log.exception("Drift computation failed")
