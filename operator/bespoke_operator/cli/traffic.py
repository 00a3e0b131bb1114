"""Replays example traffic against a serving endpoint at a steady rate, bounded in time."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TrafficStats", "load_texts", "replay"]


@dataclass
class TrafficStats:
    """What a replay sent and how the server answered."""

    requests: int = 0
    texts: int = 0
    errors: int = 0
    labels: dict[str, int] = field(default_factory=dict)


def load_texts(path: Path, column: str = "text") -> list[str]:
    """The `column` of every JSON line in `path`."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line).get(column)
            if isinstance(value, str) and value:
                texts.append(value)
    if not texts:
        raise ValueError(f"{path} has no `{column}` values to replay")
    return texts


def replay(
    endpoint: str,
    texts: Sequence[str],
    *,
    rate: float,
    duration: float,
    batch: int = 8,
    stop: threading.Event | None = None,
    seed: int = 0,
) -> TrafficStats:
    """POSTs batches of `texts` to `endpoint/classify`, `rate` per second, for `duration` seconds.

    Loopback or a port-forward only; it stops by itself at `duration` or when `stop` is set.
    """
    stats = TrafficStats()
    rng = random.Random(seed)
    stop = stop or threading.Event()
    deadline = time.monotonic() + duration
    interval = 1.0 / rate
    while time.monotonic() < deadline and not stop.is_set():
        started = time.monotonic()
        sample = [texts[rng.randrange(len(texts))] for _ in range(batch)]
        body = json.dumps({"texts": sample}).encode()
        request = urllib.request.Request(
            f"{endpoint.rstrip('/')}/classify",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        stats.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answers = json.loads(response.read())
            stats.texts += len(sample)
            for answer in answers:
                label = str(answer.get("label"))
                stats.labels[label] = stats.labels.get(label, 0) + 1
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError):
            stats.errors += 1
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return stats
