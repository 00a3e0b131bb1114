"""Operator scale: create-to-Job latency and memory of Bespoke vs a no-op kopf operator.

Both operators run as `kopf run` subprocesses against the same real kube-apiserver + etcd (the
envtest harness of tests/operator/cluster), each in its own fresh namespace, one after the other.
For each
size N the benchmark creates N ModelCustomizations as fast as the API server takes them and
records, from a watch on Jobs, when each customization's Job appeared. Latency = Job seen − create
request sent. Memory is the operator process's RSS (VmRSS from /proc), peak over the run. One
discarded warm-up run of each operator (100 customizations) comes first: a fresh API server is
slow for its first few hundred writes, and whichever operator met it first used to pay for that.

The baseline is the minimal kopf operator: a create handler that creates one Job and nothing else
(no ModelVersion, no ConfigMap, no status, no events), so the ratio is Bespoke's own overhead.

Output: JSON lines, one per run, one per size, and a last line with `benchmark`, `baseline` and
`ratio` = baseline p99 ÷ Bespoke p99 at the largest size (≥ 0.5 meets the "p99 ≤ 2×" target).
Run: `python benchmarks/operator_scale.py [--quick] [--sizes 100 500 1000] [--repeats N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.operator.cluster.envtest_cluster import EnvtestCluster

GROUP_PATH = "/apis/bespoke.dev/v1alpha1"
EXAMPLE = REPO / "examples" / "text-classification-lora.yaml"
LABEL = "bespoke.dev/customization"
BASELINE_NAME = "kopf-noop-job-operator"
_WARMUP = 100

# The baseline operator: on create, one Job with the customization's label. kopf's defaults
# otherwise (finalizer, progress annotations), the same API client library as Bespoke.
BASELINE_SOURCE = '''
"""No-op baseline: a create handler that creates one Job."""
import kopf
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, BatchV1Api
from kubernetes_asyncio.client.exceptions import ApiException


@kopf.on.startup()
async def startup(memo, settings, **_):
    settings.posting.level = 40
    await config.load_kube_config()
    memo.api = ApiClient()


@kopf.on.cleanup()
async def cleanup(memo, **_):
    await memo.api.close()


@kopf.on.create("bespoke.dev", "v1alpha1", "modelcustomizations")
async def create(name, namespace, memo, **_):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-train", "labels": {"bespoke.dev/customization": name}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                }
            },
        },
    }
    try:
        await BatchV1Api(memo.api).create_namespaced_job(namespace, job)
    except ApiException as exc:
        if exc.status != 409:
            raise
'''


@dataclass
class Run:
    """One operator against one size: latencies in seconds and RSS samples in bytes."""

    operator: str
    size: int
    latencies: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    missing: int = 0
    cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "operator": self.operator,
            "customizations": self.size,
            "jobs_seen": len(ordered),
            "missing": self.missing,
            "p50_s": round(_percentile(ordered, 50), 4) if ordered else None,
            "p99_s": round(_percentile(ordered, 99), 4) if ordered else None,
            "rss_peak_mb": round(max(self.rss) / 2**20, 1) if self.rss else None,
            "rss_end_mb": round(self.rss[-1] / 2**20, 1) if self.rss else None,
            "operator_cpu_s": round(self.cpu_s, 2),
        }


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th)."""
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _ssl_from_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return cluster["server"], context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (where an operator's time goes, not waits)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def _operator(
    kind: str, namespace: str, cluster: EnvtestCluster, workdir: Path, extra_env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts one operator process and waits until kopf reports itself alive."""
    port = _free_port()
    if kind == "bespoke":
        target = ["-m", "bespoke_operator.handlers"]
    else:
        module = workdir / "noop_operator.py"
        module.write_text(BASELINE_SOURCE)
        target = [str(module)]
    env = {
        **cluster.env(),
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
        "BESPOKE_METRICS_PORT": "0",
        **extra_env,
    }
    log = (workdir / f"{kind}-{namespace}.log").open("wb")
    argv = [sys.executable, "-m", "kopf", "run", "--standalone", "--quiet"]
    argv += ["--namespace", namespace, f"--liveness=http://127.0.0.1:{port}/healthz", *target]
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"The {kind} operator exited; see {log.name}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"The {kind} operator never became alive; see {log.name}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class JobWatch(threading.Thread):
    """Records when each customization's first Job is seen (watch ADDED events)."""

    def __init__(self, server: str, context: ssl.SSLContext, namespace: str, size: int) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=server, verify=context, timeout=None)
        self.namespace = namespace
        self.size = size
        self.seen: dict[str, float] = {}
        self.started = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        params = {"watch": "1", "timeoutSeconds": "3600"}
        with self.client.stream("GET", path, params=params) as response:
            self.started.set()
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                labels = event["object"].get("metadata", {}).get("labels", {})
                name = labels.get(LABEL)
                if event["type"] == "ADDED" and name and name not in self.seen:
                    self.seen[name] = time.monotonic()
                    if len(self.seen) >= self.size:
                        break
        self.done.set()


def _customization(name: str, namespace: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"] = {"name": name, "namespace": namespace}
    return document


def measure(
    kind: str,
    size: int,
    cluster: EnvtestCluster,
    workdir: Path,
    *,
    timeout_s: float,
    extra_env: dict[str, str],
) -> Run:
    """One operator, one size: creates the customizations and times their Jobs."""
    namespace = f"bench-{kind[:4]}-{size}-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(namespace)
    server, context = _ssl_from_kubeconfig(cluster.kubeconfig)
    run = Run(kind, size)
    with _operator(kind, namespace, cluster, workdir, extra_env) as process:
        cpu_at_start = _cpu_seconds(process.pid)
        watch = JobWatch(server, context, namespace, size)
        watch.start()
        watch.started.wait(30)
        sent: dict[str, float] = {}
        with httpx.Client(base_url=server, verify=context, timeout=60) as client:
            for index in range(size):
                name = f"mc-{index:04d}"
                body = _customization(name, namespace)
                sent[name] = time.monotonic()
                answer = client.post(
                    f"{GROUP_PATH}/namespaces/{namespace}/modelcustomizations", json=body
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"Create {name} failed: {answer.status_code} {answer.text}")
                if index % 20 == 0:
                    run.rss.append(_rss(process.pid))
        deadline = time.monotonic() + timeout_s
        while not watch.done.wait(0.5) and time.monotonic() < deadline:
            run.rss.append(_rss(process.pid))
        run.rss.append(_rss(process.pid))
        run.cpu_s = _cpu_seconds(process.pid) - cpu_at_start
        run.latencies = [watch.seen[n] - sent[n] for n in sent if n in watch.seen]
        run.missing = size - len(run.latencies)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 customizations, one repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--repeats", type=int, default=1, help="runs per operator and size")
    parser.add_argument(
        "--reconcile-interval",
        help="BESPOKE_RECONCILE_INTERVAL_SECONDS for Bespoke (default: the operator's own, 30)",
    )
    args = parser.parse_args(argv)
    extra_env = (
        {"BESPOKE_RECONCILE_INTERVAL_SECONDS": args.reconcile_interval}
        if args.reconcile_interval
        else {}
    )
    sizes = [100] if args.quick else args.sizes
    repeats = 1 if args.quick else args.repeats

    results: dict[tuple[str, int], list[Run]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bespoke-bench-") as tmp,
        EnvtestCluster() as cluster,
    ):
        cluster.apply_crds(sorted((REPO / "crds").glob("*.yaml")))
        # A fresh API server answers its first few hundred writes slowly (caches, connections):
        # one discarded run of each operator, so that no measured run pays for it.
        for kind in ("baseline", "bespoke"):
            measure(kind, _WARMUP, cluster, Path(tmp), timeout_s=120, extra_env=extra_env)
        for size in sizes:
            for repeat in range(repeats):
                # Alternate the order so neither operator always runs first.
                kinds = ["baseline", "bespoke"] if repeat % 2 == 0 else ["bespoke", "baseline"]
                for kind in kinds:
                    timeout_s = 60 + size * 0.5
                    run = measure(
                        kind, size, cluster, Path(tmp), timeout_s=timeout_s, extra_env=extra_env
                    )
                    results.setdefault((kind, size), []).append(run)
                    # The machine is shared: the load average says how contended a run was.
                    load = round(os.getloadavg()[0], 2)
                    print(json.dumps({"run": repeat, **run.summary(), "load_1m": load}), flush=True)

    final: dict[str, Any] = {}
    for size in sizes:
        row: dict[str, Any] = {"customizations": size, "repeats": repeats}
        for kind in ("baseline", "bespoke"):
            summaries = [r.summary() for r in results[(kind, size)]]
            for key in ("p50_s", "p99_s", "rss_peak_mb", "operator_cpu_s"):
                values = [s[key] for s in summaries if s[key] is not None]
                row[f"{kind}_{key}"] = statistics.median(values) if values else None
            row[f"{kind}_missing"] = sum(s["missing"] for s in summaries)
        if row["bespoke_p99_s"] and row["baseline_p99_s"]:
            row["ratio"] = round(row["baseline_p99_s"] / row["bespoke_p99_s"], 3)
        if row["bespoke_rss_peak_mb"] and row["baseline_rss_peak_mb"]:
            row["memory_delta_mb"] = round(
                row["bespoke_rss_peak_mb"] - row["baseline_rss_peak_mb"], 1
            )
        print(json.dumps(row), flush=True)
        final = row
    print(
        json.dumps(
            {
                "benchmark": "operator_scale: create-to-Job p99 (median of runs)",
                "baseline": BASELINE_NAME,
                "customizations": final["customizations"],
                "baseline_p50_s": final["baseline_p50_s"],
                "bespoke_p50_s": final["bespoke_p50_s"],
                "baseline_p99_s": final["baseline_p99_s"],
                "bespoke_p99_s": final["bespoke_p99_s"],
                "ratio": final.get("ratio"),
                "memory_delta_mb": final.get("memory_delta_mb"),
                "targets": {"ratio_at_least": 0.5, "memory_delta_mb_at_most": 50},
                "machine": f"{os.cpu_count()} CPUs, shared with other work",
                "bespoke_env": extra_env,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
