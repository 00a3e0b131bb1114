"""Serving throughput: the Bespoke service under `bentoml serve` (adaptive batching) vs the same
model behind a minimal per-request HTTP server (stdlib `ThreadingHTTPServer`), the baseline;
and Bespoke with drift monitoring on vs off.

Single-text `/classify` requests at concurrency 1, 8 and 32: requests/s, p50 and p99 latency.
Prints JSON lines; the last holds `benchmark`, `baseline` and `ratio` (Bespoke requests/s over
the baseline's at concurrency 32: above 1 means Bespoke is better). `--quick`: < 3 minutes here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, emit, use_source_roots

use_source_roots()

import httpx
from served_process import Served, free_port, start_service

TEXTS = [
    "the food was great and the service wonderful",
    "terrible place, awful and rude",
    "it was fine I guess",
    "amazing movie, I love it",
]
TORCH_THREADS = "2"


def _baseline_server(version_dir: str, port: int) -> None:
    """The baseline: one model call per request, no batching (runs in a child process)."""
    # Heavy imports only in the child that serves the baseline, not in the load generator.
    import torch

    from bespoke_serving.model import BaseLocation, Classifier, load_model
    from bespoke_serving.version import read_version

    torch.set_num_threads(int(TORCH_THREADS))
    info = read_version(Path(version_dir), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(
            Path(version_dir),
            BaseLocation(info.base_model.uri.removeprefix("file://")),
            info,
            merge=False,
        )
    assert isinstance(model, Classifier)
    # Fast tokenizers are not thread-safe ("Already borrowed"): one model call at a time.
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(200, b"ok")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with lock:
                predictions = model.classify(body["texts"])
            out = [
                {"label": p.label, "score": p.score, "version": info.version} for p in predictions
            ]
            self._send(200, json.dumps(out).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _start_baseline(version_dir: Path, workdir: Path) -> Served:
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = workdir / "baseline.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(version_dir), str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Served(process, f"http://127.0.0.1:{port}", log)


async def _load(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker(index: int) -> None:
            nonlocal errors
            i = index
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    response = await client.post(
                        url + "/classify", json={"texts": [TEXTS[i % len(TEXTS)]]}
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
                i += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {
        "requests_per_second": round(len(latencies) / elapsed, 2),
        "p50_ms": pct(0.50) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
        "ok": len(latencies),
        "errors": errors,
    }


def _run(name: str, served: Served, levels: list[int], seconds: float) -> dict[int, dict[str, Any]]:
    served.wait_until("/readyz" if name != "baseline" else "/", limit_seconds=300)
    asyncio.run(_load(served.url, 4, 1.0))  # warm-up, also trains BentoML's batching optimizer
    out = {}
    for level in levels:
        result = asyncio.run(_load(served.url, level, seconds))
        emit({"server": name, "concurrency": level, **result})
        out[level] = result
    return out


def _bespoke_env(version_dir: Path, monitoring: bool, interval: float) -> dict[str, str]:
    return {
        "BESPOKE_MODEL_URI": str(version_dir),
        "BESPOKE_TORCH_THREADS": TORCH_THREADS,
        "BESPOKE_MAX_BATCH_SIZE": "32",
        # Generous: on a shared 2-core machine the default 100 ms sheds load with 503s.
        "BESPOKE_MAX_LATENCY_MS": "5000",
        "BESPOKE_DRIFT_ENABLED": "true" if monitoring else "false",
        "BESPOKE_DRIFT_INTERVAL_SECONDS": str(interval),
        "BESPOKE_DRIFT_MIN_ROWS": "50",
        "BESPOKE_CAPTURE_WINDOW_SIZE": "1000",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (< 3 minutes)")
    parser.add_argument("--version-dir", type=Path, help="serve this version instead of building")
    parser.add_argument(
        "--drift-interval",
        type=float,
        default=2.0,
        help="seconds between drift runs with monitoring on (default 2: a stress setting, "
        "150x the production default of 300, so drift runs inside the short measurements)",
    )
    parser.add_argument(
        "--baseline-server", nargs=2, metavar=("VERSION_DIR", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.baseline_server:
        _baseline_server(args.baseline_server[0], int(args.baseline_server[1]))
        return
    seconds = 3.0 if args.quick else 15.0
    levels = [1, 8, 32]
    workdir = Path(tempfile.mkdtemp(prefix="bespoke-bench-"))
    version_dir = args.version_dir
    if version_dir is None:
        from version_factory import MINILM_DIR, build_classifier_version

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Untrained adapter: inference costs the same as a trained one.
            version_dir = build_classifier_version(workdir / "storage", MINILM_DIR, steps=0)

    results: dict[str, dict[int, dict[str, Any]]] = {}
    for name, start in (
        ("baseline", lambda: _start_baseline(version_dir, workdir)),
        (
            "bespoke",
            lambda: start_service(_bespoke_env(version_dir, True, args.drift_interval), workdir),
        ),
        (
            "bespoke-monitoring-off",
            lambda: start_service(_bespoke_env(version_dir, False, args.drift_interval), workdir),
        ),
    ):
        served = start()
        try:
            results[name] = _run(
                name, served, levels if name != "bespoke-monitoring-off" else [32], seconds
            )
        finally:
            served.stop()

    on, off = results["bespoke"][32], results["bespoke-monitoring-off"][32]
    emit(
        {
            "comparison": "monitoring on vs off at concurrency 32",
            "drift_interval_seconds": args.drift_interval,
            "throughput_cost_ratio": round(
                1 - on["requests_per_second"] / off["requests_per_second"], 3
            ),
            "p99_cost_ratio": round(on["p99_ms"] / off["p99_ms"] - 1, 3),
        }
    )
    base = results["baseline"][32]
    emit(
        {
            "benchmark": "serving_throughput",
            "baseline": "same model behind stdlib ThreadingHTTPServer, one model call per request",
            "concurrency": 32,
            "bespoke_requests_per_second": on["requests_per_second"],
            "baseline_requests_per_second": base["requests_per_second"],
            "ratio": round(on["requests_per_second"] / base["requests_per_second"], 2),
        }
    )


if __name__ == "__main__":
    main()
