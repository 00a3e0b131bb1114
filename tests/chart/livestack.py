"""The flagship example running for real, for the live Prometheus tests.

The operator's reconcile core drives the local runtime (`LocalRuntime`, the same `decide` the
Kubernetes runtime uses): it starts the real trainer (`python -m bespoke_trainer`) on the packaged
MiniLM with a trimmed copy of `examples/support-tickets`, gates the version, and deploys it with a
real `bentoml serve` of `bespoke_serving`, configured by the serving shape the operator's core
decides (`reconcile.serving`). Every pass is counted by the operator's own `OperatorMetrics`,
exactly as its kopf handlers count a pass, and served on a port by prometheus_client as the
operator's `/metrics`. What differs from a cluster is only the transport (files and subprocesses
instead of Jobs and Deployments), which no metric or PromQL expression can see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

import yaml
from prometheus_client import start_http_server

from bespoke_operator.api import ModelCustomizationStatus
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.runtimes.local.runtime import LocalRuntime, prepare
from bespoke_operator.runtimes.local.state import CustomizationState
from tests.chart.chartlib import REPO_ROOT

__all__ = ["EXAMPLE", "OperatorLoop", "child_env", "classify", "example_document", "load_texts"]

EXAMPLE: Final = REPO_ROOT / "examples" / "support-tickets"
_SEED: Final = REPO_ROOT / "hack" / "seed_model_cache.py"
_SOURCE_ROOTS: Final = ("operator", "trainer", "serving", "monitor")


def load_texts(name: str, count: int) -> list[str]:
    """The first `count` texts of `examples/support-tickets/traffic/<name>.jsonl`."""
    lines = (EXAMPLE / "traffic" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:count]]


def child_env(workdir: Path) -> dict[str, str]:
    """Environment of the trainer and the server: offline MiniLM, one torch thread each.

    The packaged MiniLM is linked into a private Hugging Face cache under its Hub name, so the
    example's `hf://sentence-transformers/all-MiniLM-L6-v2` loads offline as from a real cache.
    One intra-op thread per process, as `bespoke run` does: trainer and server share 2 cores here.
    """
    env = {
        "HF_HOME": str(workdir / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / root) for root in _SOURCE_ROOTS),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    subprocess.run(
        [sys.executable, str(_SEED)],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    return env


def example_document(root: Path, state: CustomizationState, *, train_rows: int) -> dict[str, Any]:
    """The example customization, trimmed to train in seconds, as the local runtime runs it.

    Training is cut (fewer rows, one epoch) and the gates lowered to what such a short run
    reaches: these tests watch the monitoring, not the model's quality (the e2e story does that).
    The monitoring settings are the example's, except a 5 s interval (the API's minimum) so a
    drift pass follows the traffic quickly; the server's minimum rows follow from the window.
    """
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = (EXAMPLE / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    (data / "train.jsonl").write_text("\n".join(rows[:train_rows]) + "\n", encoding="utf-8")
    shutil.copy(EXAMPLE / "data" / "recent-labelled.jsonl", data / "recent-labelled.jsonl")
    document: dict[str, Any] = yaml.safe_load((EXAMPLE / "customization.yaml").read_text())
    spec = document["spec"]
    spec["training"].update({"epochs": 1, "learningRate": "5e-3"})
    spec["evaluation"]["gates"] = [
        {"metric": "accuracy", "min": "0.5"},
        {"metric": "macroF1", "min": "0.3"},
    ]
    spec["monitoring"]["intervalSeconds"] = 5
    prepared: dict[str, Any] = prepare(document, root, state)
    return prepared


class OperatorLoop:
    """Reconcile passes in a thread, counted by `OperatorMetrics` served on `metrics_port`.

    The counting mirrors `runtimes.kubernetes.controller.Controller.reconcile`: one
    `observe_reconcile` per pass, then the decision's events and the new status.
    """

    def __init__(self, runtime: LocalRuntime, metrics_port: int, interval: float = 0.5) -> None:
        self.runtime = runtime
        self.metrics = OperatorMetrics()
        self.metrics_port = metrics_port
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator-loop", daemon=True)
        self._server, _ = start_http_server(
            metrics_port, addr="127.0.0.1", registry=self.metrics.registry
        )
        self.error: BaseException | None = None
        self.status: ModelCustomizationStatus | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        mc = self.runtime.customization()
        key = (mc.metadata.namespace or "local", mc.metadata.name)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                step = self.runtime.step(read_drift=True)
            except BaseException as exc:  # surfaced by the test through `error`
                self.metrics.observe_reconcile("error", time.perf_counter() - started)
                self.error = exc
                return
            self.metrics.observe_reconcile("success", time.perf_counter() - started)
            self.metrics.observe_decision(*key, step.decision)
            self.metrics.observe_status(*key, step.decision.status, mc)
            self.status = step.decision.status
            self._stop.wait(self._interval)

    def wait_until(self, what: str, done: Any, timeout: float) -> ModelCustomizationStatus:
        """Poll the last status until `done(status)`; fail with the phase and the logs if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"the reconcile loop failed: {self.error!r}") from self.error
            status = self.status
            if status is not None and done(status):
                return status
            time.sleep(0.2)
        raise TimeoutError(
            f"{what} not reached in {timeout} s; status: {self.status}\n{self.logs()}"
        )

    def logs(self) -> str:
        """The tail of every trainer and server log, for failure messages."""
        state = self.runtime.state
        paths = [run.log for run in state.runs()] + [state.serving_log]
        return "\n".join(
            f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in paths if p.exists()
        )

    def stop(self) -> None:
        """Stops the passes (the metrics endpoint keeps serving what was counted)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def close(self) -> None:
        """Stops the passes, every child process and the metrics endpoint."""
        self.stop()
        self.runtime.stop_trainers()
        self.runtime.stop_serving()
        self._server.shutdown()
        self._server.server_close()


def classify(endpoint: str, texts: list[str]) -> int:
    """POST texts to `/classify`; the HTTP status."""
    request = urllib.request.Request(
        f"{endpoint}/classify",
        data=json.dumps({"texts": texts}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        error.close()
        return int(error.code)
