"""Drift computation cost: Bespoke's `drift_between` on a traffic window vs Evidently's
DataDriftPreset run directly on the raw frame (text, prediction, confidence), the baseline.

Prints JSON lines; the last holds `benchmark`, `baseline` and `ratio` (baseline seconds / Bespoke
seconds at 10k rows: above 1 means Bespoke is faster). `--quick` keeps it under 3 minutes.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
import tracemalloc
import warnings
from collections.abc import Callable

import pandas as pd
from _common import emit, median, use_source_roots

use_source_roots()

from traffic_factory import REFERENCE_WORDS, reference_traffic

from bespoke_monitor import drift_between, featurize

REFERENCE_ROWS = 2000


def _baseline(reference: pd.DataFrame, current: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The baseline is Evidently itself, imported under the same warning filter as the
        # adapter uses; only bespoke_monitor._evidently imports it in the product.
        from evidently import Report
        from evidently.presets import DataDriftPreset

        Report([DataDriftPreset()]).run(current, reference)


def _measure(fn: Callable[[], object], repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 100k without baseline")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    vocabulary = frozenset(REFERENCE_WORDS)
    reference_raw = reference_traffic(REFERENCE_ROWS, seed=1)
    reference = featurize(reference_raw, vocabulary)
    # Warm both paths so import and first-call costs are not billed to the first window.
    warm = reference_traffic(200, seed=3)
    drift_between(reference, featurize(warm, vocabulary))
    _baseline(reference_raw.head(200), warm)

    results = {}
    for rows in (1_000, 10_000, 100_000):
        current = reference_traffic(rows, seed=rows)

        def bespoke(current: pd.DataFrame = current) -> object:
            return drift_between(reference, featurize(current, vocabulary))

        seconds, peak = _measure(bespoke, repeats)
        record: dict[str, object] = {
            "window_rows": rows,
            "bespoke_seconds": round(seconds, 4),
            "bespoke_peak_bytes": peak,
        }
        if not (args.quick and rows == 100_000):

            def base(current: pd.DataFrame = current) -> object:
                _baseline(reference_raw, current)
                return None

            base_seconds, base_peak = _measure(base, 1 if rows == 100_000 else repeats)
            record.update(baseline_seconds=round(base_seconds, 4), baseline_peak_bytes=base_peak)
        results[rows] = record
        emit(record)

    peaks = [results[n]["bespoke_peak_bytes"] for n in (1_000, 10_000, 100_000)]
    growth = [float(b) / float(a) for a, b in itertools.pairwise(peaks)]  # type: ignore[arg-type]
    emit(
        {
            "memory_growth_per_10x_rows": [round(g, 2) for g in growth],
            "linear_or_better": all(g <= 10.5 for g in growth),
        }
    )
    at10k = results[10_000]
    emit(
        {
            "benchmark": "drift_cost",
            "baseline": "evidently DataDriftPreset on the raw frame (text, prediction, confidence)",
            "window_rows": 10_000,
            "bespoke_seconds": at10k["bespoke_seconds"],
            "baseline_seconds": at10k["baseline_seconds"],
            "ratio": round(float(at10k["baseline_seconds"]) / float(at10k["bespoke_seconds"]), 2),  # type: ignore[arg-type]
        }
    )


if __name__ == "__main__":
    main()
