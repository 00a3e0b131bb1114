"""Start `bentoml serve` (and Prometheus) as real subprocesses for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

__all__ = ["REPO_ROOT", "Served", "free_port", "start_prometheus", "start_service"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A subprocess in its own process group, stopped as a whole."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def wait_until(self, path: str, limit_seconds: float) -> None:
        """Poll `path` until it answers 200; fail with the process log if it never does."""
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-4000:]
        self.stop()
        raise RuntimeError(f"{self.url}{path} never became ready; log tail:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL what is left."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def _spawn(command: list[str], env: Mapping[str, str], log: Path, url: str) -> Served:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Served(process, url, log)


def start_service(env: Mapping[str, str], workdir: Path) -> Served:
    """`bentoml serve bespoke_serving.service:Bespoke` on a free port."""
    port = free_port()
    roots = [str(REPO_ROOT / "serving"), str(REPO_ROOT / "monitor")]
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([*roots, os.environ.get("PYTHONPATH", "")]),
        "BENTOML_HOME": str(workdir / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    bentoml = str(Path(sys.executable).parent / "bentoml")
    command = [
        bentoml,
        "serve",
        "bespoke_serving.service:Bespoke",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return _spawn(command, full_env, workdir / "bentoml.log", f"http://127.0.0.1:{port}")


def start_prometheus(binary: str, target: str, workdir: Path) -> Served:
    """A real Prometheus scraping `target` (host:port) every second."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: bespoke\n"
        f"    static_configs:\n      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return _spawn(command, os.environ, workdir / "prometheus.log", f"http://127.0.0.1:{port}")
