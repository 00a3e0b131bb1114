"""Capture of served traffic: a bounded in-memory window for drift, and optional rotated JSONL.

Requests only put records on a queue; one background thread moves them into the window and the
file, so neither the lock-free request path nor the drift loop waits on disk. The queue is
bounded: when the thread falls behind (a slow disk under a flood), new records are dropped and
counted rather than held, since capture samples traffic and must not cost the pod its memory.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

__all__ = ["CaptureRecord", "JsonlSink", "TrafficCapture"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureRecord:
    """One served input with what the model said about it."""

    text: str
    prediction: str | None
    confidence: float | None
    timestamp: float
    # Kept in memory for embedding drift only; never written to the JSONL files.
    embedding: np.ndarray | None = None

    def jsonable(self) -> dict[str, object]:
        """The fields written to the capture files."""
        return {
            "text": self.text,
            "prediction": self.prediction,
            "confidence": self.confidence,
            "timestamp": self.timestamp,
        }


class JsonlSink:
    """Appends records as JSON lines, rotating by size and keeping the newest files."""

    def __init__(self, directory: Path, max_bytes: int, max_files: int, prefix: str) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.prefix = prefix
        directory.mkdir(parents=True, exist_ok=True)
        self._file = self._open()

    def write(self, records: Sequence[CaptureRecord]) -> None:
        """Append records, rotating first when the current file is full."""
        for record in records:
            if self._file.tell() >= self.max_bytes:
                self._rotate()
            self._file.write(json.dumps(record.jsonable(), ensure_ascii=False) + "\n")
        self._file.flush()

    def files(self) -> list[Path]:
        """Captured files, oldest first."""
        return sorted(self.directory.glob(f"{self.prefix}-*.jsonl"))

    def close(self) -> None:
        """Flush and close the current file."""
        self._file.close()

    def _open(self) -> TextIO:
        # Nanosecond stamps keep names unique and sortable across rotations and restarts.
        path = self.directory / f"{self.prefix}-{time.time_ns():020d}.jsonl"
        return open(path, "a", encoding="utf-8")

    def _rotate(self) -> None:
        self._file.close()
        self._file = self._open()
        for old in self.files()[: -self.max_files]:
            old.unlink(missing_ok=True)


class TrafficCapture:
    """The window drift is computed on, fed off the request path by a background thread."""

    def __init__(
        self, window_size: int, sink: JsonlSink | None = None, max_queued_records: int = 10_000
    ) -> None:
        self._window: deque[CaptureRecord] = deque(maxlen=window_size)
        self.max_queued_records = max_queued_records
        #: Records dropped because the queue was full.
        self.dropped = 0
        self._queued_records = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[list[CaptureRecord] | None] = queue.SimpleQueue()
        self._sink = sink
        self._drained = threading.Condition()
        self._pending = 0
        self._ingested = 0
        self._thread = threading.Thread(target=self._run, name="bespoke-capture", daemon=True)
        self._thread.start()

    def submit(
        self,
        texts: Sequence[str],
        predictions: Sequence[str | None],
        confidences: Sequence[float | None],
        embeddings: np.ndarray | None = None,
    ) -> None:
        """Queue served traffic (with one embedding row per text, if given); returns at once."""
        now = time.time()
        vectors: Sequence[np.ndarray | None] = (
            [None] * len(texts) if embeddings is None else list(embeddings)
        )
        records = [
            CaptureRecord(t, p, c, now, e)
            for t, p, c, e in zip(texts, predictions, confidences, vectors, strict=True)
        ]
        with self._drained:
            if self._queued_records + len(records) > self.max_queued_records:
                self.dropped += len(records)
                if self.dropped == len(records) or self.dropped % 10_000 < len(records):
                    log.warning(
                        "Capture queue full (%d records): %d records dropped so far",
                        self.max_queued_records,
                        self.dropped,
                    )
                return
            self._pending += 1
            self._queued_records += len(records)
        self._queue.put(records)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is in the window (and file)."""
        with self._drained:
            return self._drained.wait_for(lambda: self._pending == 0, timeout)

    def snapshot(self) -> pd.DataFrame:
        """The current window as a frame with `text`, `prediction`, `confidence` columns, and
        `embedding` (one vector per row) when every row has one."""
        with self._lock:
            rows = list(self._window)
        frame = pd.DataFrame(
            {
                "text": [r.text for r in rows],
                "prediction": [r.prediction for r in rows],
                "confidence": pd.Series([r.confidence for r in rows], dtype="float64"),
            }
        )
        if frame["prediction"].isna().all():
            frame = frame.drop(columns=["prediction"])
        if frame["confidence"].isna().all():
            frame = frame.drop(columns=["confidence"])
        if rows and all(r.embedding is not None for r in rows):
            frame["embedding"] = pd.Series([r.embedding for r in rows], dtype="object")
        return frame

    @property
    def ingested(self) -> int:
        """Records that ever entered the window: unchanged means no new traffic."""
        with self._lock:
            return self._ingested

    def __len__(self) -> int:
        with self._lock:
            return len(self._window)

    def close(self) -> None:
        """Stop the background thread after it has written what is queued."""
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._sink is not None:
            self._sink.close()

    def _run(self) -> None:
        while True:
            records = self._queue.get()
            if records is None:
                return
            with self._lock:
                self._window.extend(records)
                self._ingested += len(records)
            if self._sink is not None:
                try:
                    self._sink.write(records)
                except OSError:
                    # Losing capture must never take serving down; the window still has the data.
                    log.exception("Cannot write captured traffic")
            with self._drained:
                self._pending -= 1
                self._queued_records -= len(records)
                self._drained.notify_all()
