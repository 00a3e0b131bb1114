"""Serving throughput: the Bespoke service under `bentoml serve` vs the same model behind a
minimal per-request HTTP server (stdlib `ThreadingHTTPServer`, one model call per request), the
baseline; and Bespoke with drift monitoring on vs off at a realistic drift interval.

All servers run at once, with the same model and the same torch thread count; one light asyncio
client (aiohttp) sends single-text `/classify` requests, and the servers take turns, so a change
in the shared machine's load falls on every server alike. Ratios are taken within a round and
reported as the median over rounds.

1. Latency table: concurrency 1, 8, 32; requests/s, p50 and p99 for the baseline and Bespoke
   (monitoring off; with `--adaptive` also BentoML's adaptive batching instead of Bespoke's).
2. Monitoring: at concurrency 32, blocks as long as the drift interval for Bespoke with
   monitoring on, Bespoke with it off, and the baseline. After a monitoring-on block the client
   waits for the drift run that block's traffic triggers, so no drift run lands in another
   server's block, and each monitoring-on block holds the share of drift runs production has
   (one per interval); the number seen in each block is reported.

Prints JSON lines; the last holds `benchmark`, `baseline` and `ratio` (Bespoke with monitoring
on, requests/s over the baseline's at concurrency 32, median over rounds: above 1 means Bespoke
is better). `--quick`: < 3 minutes here, with a 10 s drift interval (a stress setting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, emit, median, use_source_roots

use_source_roots()

import aiohttp
import httpx
from served_process import Served, free_port, start_service

TEXTS = [
    "the food was great and the service wonderful",
    "terrible place, awful and rude",
    "it was fine I guess",
    "amazing movie, I love it",
]


def _baseline_server(version_dir: str, port: int, threads: int) -> None:
    """The baseline: one model call per request, no batching (runs in a child process)."""
    # Heavy imports only in the child that serves the baseline, not in the load generator.
    import torch

    from bespoke_serving.model import BaseLocation, Classifier, load_model
    from bespoke_serving.version import read_version

    torch.set_num_threads(threads)
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
    classifier: Classifier = model  # narrowed once, for the handler class below
    classifier.classify(["warm up", "a second, longer warm-up text"])
    # Fast tokenizers are not thread-safe ("Already borrowed"): one model call at a time.
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does for Bespoke

        def do_GET(self) -> None:
            self._send(200, b"ok")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with lock:
                predictions = classifier.classify(body["texts"])
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

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _start_baseline(version_dir: Path, workdir: Path, threads: int) -> Served:
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = workdir / "baseline.log"
    command = [sys.executable, __file__, "--baseline-server", str(version_dir), str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--torch-threads", str(threads)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Served(process, f"http://127.0.0.1:{port}", log)


def _bespoke_env(
    version_dir: Path,
    *,
    monitoring: bool,
    interval: float,
    threads: int,
    batching: str,
    max_latency_ms: int = 5000,
) -> dict[str, str]:
    return {
        "BESPOKE_MODEL_URI": str(version_dir),
        "BESPOKE_TORCH_THREADS": str(threads),
        "BESPOKE_BATCHING": batching,
        "BESPOKE_MAX_BATCH_SIZE": "32",
        # Only BentoML's adaptive batching reads it; generous, or the shared 2-core machine's
        # slow moments shed load with 503s.
        "BESPOKE_MAX_LATENCY_MS": str(max_latency_ms),
        "BESPOKE_DRIFT_ENABLED": "true" if monitoring else "false",
        "BESPOKE_DRIFT_INTERVAL_SECONDS": str(interval),
        "BESPOKE_DRIFT_MIN_ROWS": "100",
        "BESPOKE_CAPTURE_WINDOW_SIZE": "1000",
    }


async def _load(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load: `concurrency` clients, each sending its next request on an answer."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop_at = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            nonlocal errors
            i = index
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                body = {"texts": [TEXTS[i % len(TEXTS)]]}
                try:
                    async with session.post(url + "/classify", json=body) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
                i += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {
        "requests_per_second": round(len(latencies) / elapsed, 2),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "ok": len(latencies),
        "errors": errors,
    }


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by a live process and its live descendants.

    A tree, not a process group: BentoML starts its worker in a group of its own.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, used in ticks.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += used
    return total / os.sysconf("SC_CLK_TCK")


def _with_cpu(result: dict[str, Any], cpu_seconds: float) -> dict[str, Any]:
    # Requests per CPU-second of the server's own processes: what the machine's changing load
    # does not move, unlike requests per second.
    efficiency = result["ok"] / cpu_seconds if cpu_seconds > 0 else None
    return {
        **result,
        "server_cpu_seconds": round(cpu_seconds, 2),
        "requests_per_cpu_second": round(efficiency, 1) if efficiency else None,
    }


def _measure(name: str, served: Served, level: int, seconds: float, **extra: Any) -> dict[str, Any]:
    cpu = _tree_cpu_seconds(served.process.pid)
    result = asyncio.run(_load(served.url, level, seconds))
    result = _with_cpu(
        {"server": name, "concurrency": level, **result},
        _tree_cpu_seconds(served.process.pid) - cpu,
    )
    emit({**result, **extra})
    return result


def _checked_at(served: Served) -> str | None:
    value = httpx.get(served.url + "/drift", timeout=30).json().get("checkedAt")
    return str(value) if value is not None else None


def _monitored_block(
    served: Served, seconds: float, interval: float, round_index: int
) -> dict[str, Any]:
    """A concurrency-32 block on the monitoring-on server, then the wait for its drift run."""
    readings: set[str] = set()

    async def block() -> dict[str, Any]:
        before = await asyncio.to_thread(_checked_at, served)
        task = asyncio.create_task(_load(served.url, 32, seconds))
        while not task.done():
            # One light GET a second: counts the drift runs that finished inside the block.
            stamp = await asyncio.to_thread(_checked_at, served)
            if stamp is not None and stamp != before:
                readings.add(stamp)
            await asyncio.sleep(1.0)
        return await task

    cpu = _tree_cpu_seconds(served.process.pid)
    result = {"server": "bespoke", "concurrency": 32, **asyncio.run(block())}
    ended = time.time()
    deadline = time.monotonic() + interval + 120
    settled = False
    while time.monotonic() < deadline and not settled:
        stamp = _checked_at(served)
        settled = stamp is not None and datetime_seconds(stamp) >= ended
        time.sleep(0.5)
    # The CPU count runs until that drift run is done, so it includes what the run cost.
    result = _with_cpu(result, _tree_cpu_seconds(served.process.pid) - cpu)
    result |= {
        "drift_runs_finished_in_block": len(readings),
        "drift_run_after_block_seconds": round(time.time() - ended, 1) if settled else None,
    }
    emit({**result, "phase": "monitoring", "round": round_index})
    return result


def datetime_seconds(stamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 `checkedAt`."""
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: round(median([float(r[key]) for r in rows if r[key] is not None]), 2)
        for key in ("requests_per_second", "p50_ms", "p99_ms", "requests_per_cpu_second")
    } | {"errors": sum(int(r["errors"]) for r in rows), "rounds": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (< 3 minutes)")
    parser.add_argument("--version-dir", type=Path, help="serve this version instead of building")
    parser.add_argument("--rounds", type=int, help="rounds of the latency table (2; quick 1)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per latency measurement (6; quick 2.5)"
    )
    parser.add_argument(
        "--drift-interval",
        type=float,
        help="seconds between drift runs with monitoring on, also the monitoring block length "
        "(30; quick 10, a stress setting; the production default is 300)",
    )
    parser.add_argument("--monitor-rounds", type=int, help="monitoring rounds (3; quick 1)")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch intra-op threads, every server (1)"
    )
    parser.add_argument(
        "--adaptive", action="store_true", help="also BentoML's adaptive batching in the table"
    )
    parser.add_argument(
        "--adaptive-max-latency-ms",
        type=int,
        default=5000,
        help="BentoML's max_latency_ms for --adaptive (5000; the serving default is 100, which "
        "sheds load with 503s on a busy 2-core machine)",
    )
    parser.add_argument(
        "--baseline-server", nargs=2, metavar=("VERSION_DIR", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    # A stopped benchmark still stops its servers (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.baseline_server:
        _baseline_server(args.baseline_server[0], int(args.baseline_server[1]), args.torch_threads)
        return
    rounds = args.rounds or (1 if args.quick else 2)
    seconds = args.seconds or (2.5 if args.quick else 6.0)
    interval = args.drift_interval or (10.0 if args.quick else 30.0)
    monitor_rounds = args.monitor_rounds or (1 if args.quick else 3)
    threads = args.torch_threads
    workdir = Path(tempfile.mkdtemp(prefix="bespoke-bench-"))
    version_dir = args.version_dir
    if version_dir is None:
        from version_factory import MINILM_DIR, build_classifier_version

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Untrained adapter: inference costs the same as a trained one.
            version_dir = build_classifier_version(workdir / "storage", MINILM_DIR, steps=0)

    def bespoke(name: str, monitoring: bool, batching: str) -> Callable[[], Served]:
        env = _bespoke_env(
            version_dir,
            monitoring=monitoring,
            interval=interval,
            threads=threads,
            batching=batching,
            max_latency_ms=args.adaptive_max_latency_ms,
        )
        (workdir / name).mkdir()
        return lambda: start_service(env, workdir / name)

    starters: dict[str, Callable[[], Served]] = {
        "baseline": lambda: _start_baseline(version_dir, workdir, threads),
        "bespoke": bespoke("bespoke", True, "greedy"),
        "bespoke-monitoring-off": bespoke("bespoke-monitoring-off", False, "greedy"),
    }
    if args.adaptive:
        starters["bespoke-adaptive-batching"] = bespoke("bespoke-adaptive", False, "adaptive")
    servers: dict[str, Served] = {}
    try:
        for name, start in starters.items():
            servers[name] = start()
        for name, served in servers.items():
            served.wait_until("/" if name == "baseline" else "/readyz", limit_seconds=600)
        for served in servers.values():
            # Warm-up; also lets BentoML's adaptive batching train its latency model.
            asyncio.run(_load(served.url, 32, 2.0))
        emit(
            {"torch_threads": threads, "drift_interval_seconds": interval, "load": os.getloadavg()}
        )
        table = _latency_table(servers, rounds, seconds)
        monitoring = _monitoring(servers, monitor_rounds, interval)
    finally:
        for served in servers.values():
            served.stop()
    _report(table, monitoring, interval)


def _latency_table(
    servers: dict[str, Served], rounds: int, seconds: float
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    names = [n for n in servers if n != "bespoke"]
    table: dict[str, dict[int, list[dict[str, Any]]]] = {n: {} for n in names}
    for r in range(rounds):
        for level in (1, 8, 32):
            # Alternate who goes first, so a load change favours no one.
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                row = _measure(name, servers[name], level, seconds, phase="table", round=r)
                table[name].setdefault(level, []).append(row)
    for name, levels in table.items():
        for level, rows in levels.items():
            emit({"server": name, "concurrency": level, "median_of": "rounds", **_medians(rows)})
    return table


def _monitoring(
    servers: dict[str, Served], rounds: int, interval: float
) -> list[dict[str, dict[str, Any]]]:
    out = []
    for r in range(rounds):
        row: dict[str, dict[str, Any]] = {}
        order = ["bespoke", "bespoke-monitoring-off", "baseline"]
        for name in order if r % 2 == 0 else order[::-1]:
            if name == "bespoke":
                row[name] = _monitored_block(servers[name], interval, interval, r)
            else:
                row[name] = _measure(name, servers[name], 32, interval, phase="monitoring", round=r)
        out.append(row)
    return out


def _report(
    table: dict[str, dict[int, list[dict[str, Any]]]],
    monitoring: list[dict[str, dict[str, Any]]],
    interval: float,
) -> None:
    def rps(row: dict[str, Any]) -> float:
        return float(row["requests_per_second"])

    def p99(row: dict[str, Any]) -> float:
        return float(row["p99_ms"])

    def eff(row: dict[str, Any]) -> float:
        return float(row["requests_per_cpu_second"])

    throughput_cost = [1 - rps(m["bespoke"]) / rps(m["bespoke-monitoring-off"]) for m in monitoring]
    p99_cost = [p99(m["bespoke"]) / p99(m["bespoke-monitoring-off"]) - 1 for m in monitoring]
    cpu_cost = [eff(m["bespoke-monitoring-off"]) / eff(m["bespoke"]) - 1 for m in monitoring]
    emit(
        {
            "comparison": "monitoring on vs off at concurrency 32 (median over rounds)",
            "drift_interval_seconds": interval,
            "drift_runs_finished_in_block": [
                m["bespoke"]["drift_runs_finished_in_block"] for m in monitoring
            ],
            "drift_run_after_block_seconds": [
                m["bespoke"]["drift_run_after_block_seconds"] for m in monitoring
            ],
            "throughput_cost_ratio": round(median(throughput_cost), 3),
            "throughput_cost_per_round": [round(c, 3) for c in throughput_cost],
            "p99_cost_ratio": round(median(p99_cost), 3),
            "p99_cost_per_round": [round(c, 3) for c in p99_cost],
            "cpu_per_request_cost_ratio": round(median(cpu_cost), 3),
        }
    )
    off32 = zip(table["bespoke-monitoring-off"][32], table["baseline"][32], strict=True)
    ratios_off = [rps(b) / rps(a) for b, a in off32]
    ratios = [rps(m["bespoke"]) / rps(m["baseline"]) for m in monitoring]
    emit(
        {
            "benchmark": "serving_throughput",
            "baseline": "same model behind stdlib ThreadingHTTPServer, one model call per request",
            "concurrency": 32,
            "bespoke_requests_per_second": round(
                median([rps(m["bespoke"]) for m in monitoring]), 2
            ),
            "baseline_requests_per_second": round(
                median([rps(m["baseline"]) for m in monitoring]), 2
            ),
            "ratio_per_round": [round(x, 2) for x in ratios],
            "ratio_monitoring_off": round(median(ratios_off), 2),
            "cpu_efficiency_ratio": round(
                median([eff(m["bespoke"]) / eff(m["baseline"]) for m in monitoring]), 2
            ),
            "ratio": round(median(ratios), 2),
            "load": os.getloadavg(),
        }
    )


if __name__ == "__main__":
    main()
