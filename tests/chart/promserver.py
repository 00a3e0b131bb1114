"""A real Prometheus server for tests: scrapes given targets, loads rule files, answers queries."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import yaml

__all__ = ["PrometheusServer", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """Runs the `prometheus` binary on a free port with a 1 s scrape and evaluation interval.

    `targets` maps a job name to (host:port, extra target labels) pairs, so tests can attach the
    labels a PodMonitor's relabelings would (namespace, customization, version, component).
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        targets: dict[str, list[tuple[str, dict[str, str]]]],
        rule_files: list[Path] | None = None,
        *,
        scrape_self: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        if scrape_self:
            targets = {**targets, "prometheus": [(f"127.0.0.1:{self.port}", {})]}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [
                {
                    "job_name": job,
                    # The bespoke_* series carry their own namespace/customization labels.
                    "honor_labels": True,
                    "static_configs": [{"targets": [t], "labels": labels} for t, labels in pairs],
                }
                for job, pairs in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._command = [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def __enter__(self) -> PrometheusServer:
        self._log = (self._workdir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout=60)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            return json.loads(response.read())

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self._workdir / "prometheus.log").read_text()
                raise RuntimeError(f"Prometheus exited: {log[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("Prometheus did not become ready")

    def query(self, expr: str) -> dict[str, Any]:
        """Run an instant query; return Prometheus's whole answer (status, data, warnings)."""
        try:
            answer: dict[str, Any] = self._get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read())
        return answer

    def rules(self) -> list[dict[str, Any]]:
        groups = self._get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts with their labels and annotations."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return alerts

    def label_values(self, label: str) -> list[str]:
        """Every value of `label` in the stored series (`__name__`: every series name)."""
        values: list[str] = self._get(f"/api/v1/label/{label}/values")["data"]
        return values

    def scraped_metric_names(self) -> set[str]:
        """Series names the targets declare (HELP/TYPE lines), with or without samples yet.

        A labelled counter has no series until its first event, but its exporter declares it
        from the start. Metadata is per family: OpenMetrics names a counter's family without
        `_total`, and a histogram's series are its family's `_bucket`, `_sum` and `_count`.
        """
        families: dict[str, list[dict[str, str]]] = self._get("/api/v1/metadata")["data"]
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        suffixes["summary"] = ("_sum", "_count")
        names = set()
        for family, entries in families.items():
            names.add(family)
            for entry in entries:
                names |= {
                    family + s for s in suffixes.get(entry["type"], ()) if not family.endswith(s)
                }
        return names

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until the query returns at least one series; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.query(expr)
            if answer.get("status") == "success" and answer["data"]["result"]:
                result: list[dict[str, Any]] = answer["data"]["result"]
                return result
            time.sleep(0.5)
        raise TimeoutError(f"{expr} returned nothing within {timeout} s")
