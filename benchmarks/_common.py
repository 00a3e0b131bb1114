"""Shared helpers for Bespoke's serving and drift benchmarks: paths, timing, JSON lines."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "emit", "median", "use_source_roots"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def use_source_roots() -> None:
    """Import this checkout's packages and the test version builder, whatever is installed."""
    for folder in ("serving", "monitor", "tests/serving", "tests/monitor"):
        path = str(REPO_ROOT / folder)
        if path not in sys.path:
            sys.path.insert(0, path)


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(record, sort_keys=True), flush=True)


def median(values: list[float]) -> float:
    """Median of the repeats."""
    return float(statistics.median(values))
