"""Child processes of the local runtime: the trainer and `bentoml serve`, started and stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "alive",
    "free_port",
    "get_json",
    "port_free",
    "ready",
    "start_serving",
    "start_trainer",
    "stop",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (as uvicorn does, reusing it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _spawn(args: list[str], log: Path, env: Mapping[str, str]) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            args,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            # Its own process group, so stopping it also stops what it started (workers).
            start_new_session=True,
        )
    return process.pid


def start_trainer(config: Path, summary: Path, log: Path, env: Mapping[str, str]) -> int:
    """`python -m bespoke_trainer --config ...`; returns its pid."""
    args = [
        sys.executable,
        "-m",
        "bespoke_trainer",
        "--config",
        str(config),
        "--termination-log",
        str(summary),
    ]
    return _spawn(args, log, env)


def start_serving(port: int, log: Path, env: Mapping[str, str]) -> int:
    """`bentoml serve` of the Bespoke service on 127.0.0.1:`port`; returns its pid."""
    args = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "bespoke_serving.service:Bespoke",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return _spawn(args, log, env)


def alive(pid: int) -> bool:
    """Whether a process we started is still running (a finished child is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[-1].split()[0]


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL if it lingers; a gone process is fine."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)


def get_json(url: str, timeout: float = 5.0) -> Any | None:
    """GET a JSON document; None when the server is not answering (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError):
        return None


def ready(endpoint: str) -> bool:
    """Whether the service answers `/readyz` with 200 (loaded and warmed up)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return False
