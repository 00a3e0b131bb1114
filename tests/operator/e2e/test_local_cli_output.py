"""What scripts and people read from `bespoke`: --version, -o json|yaml, exit codes, the status
table at 80 columns, the state after `bespoke stop`, the port across a rollback.

Over a state directory as earlier runs leave it (tests/operator/e2e/test_local_cli_state.py builds
it);
nothing is trained. Where a server is needed, a real process listens on the port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Any

import pytest
import yaml

from bespoke_operator import kube_yaml
from bespoke_operator.cli import app
from bespoke_operator.cli.run import ExitCode
from bespoke_operator.runtimes.local import processes
from bespoke_operator.runtimes.local.runtime import LocalRuntime
from bespoke_operator.runtimes.local.state import CustomizationState, ServingRecord
from tests.operator.e2e.test_local_cli_state import (
    NAME,
    _bespoke,
    _no_traceback,
    _registry,
    _state,
    runner,
)

ENDPOINT = "http://127.0.0.1:45678"


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """v1 retired, v2 in production and Ready at ENDPOINT, v3 rejected by its gates."""
    file = _registry(
        tmp_path,
        [
            ("Retired", "Superseded", True),
            ("Promoted", "GatesPassed", True),
            ("Rejected", "GatesFailed", True),
        ],
        production=2,
    )
    state = CustomizationState(_state(file), NAME)
    mc = state.load_customization()
    assert mc is not None
    assert mc.status is not None
    ready = mc.status.model_copy(update={"phase": "Ready", "endpoint": ENDPOINT})
    state.save_customization(mc.model_copy(update={"status": ready}))
    return file


@pytest.fixture
def listener() -> Iterator[subprocess.Popen[bytes]]:
    """A real process in its own session, standing in for `bentoml serve` where only its
    lifetime matters; killed at the end whatever the test did."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    yield process
    process.kill()
    process.wait(timeout=10)


def test_version_prints_the_installed_version() -> None:
    result = _bespoke("--version")
    assert result.exit_code == ExitCode.OK
    assert result.stdout == f"bespoke {distribution_version('bespoke')}\n"


def test_completion_is_enabled_and_completes_commands_and_options() -> None:
    script = _bespoke("--show-completion", "bash")
    assert script.exit_code == ExitCode.OK
    assert "_BESPOKE_COMPLETE=complete_bash" in script.stdout
    for words, expected in (("bespoke sta", {"status"}), ("bespoke status --o", {"--output"})):
        completed = runner.invoke(
            app,
            [],
            env={
                "_BESPOKE_COMPLETE": "complete_bash",
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split()) - 1),
            },
            prog_name="bespoke",
        )
        assert set(completed.stdout.split()) == expected, words


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_status_output_is_a_list_of_the_resources(history: Path, output: str) -> None:
    result = _bespoke("status", "--state-dir", _state(history), "-o", output)
    assert result.exit_code == ExitCode.OK, result.output
    document: dict[str, Any] = (json.loads if output == "json" else yaml.safe_load)(result.stdout)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    [item] = document["items"]
    assert item["kind"] == "ModelCustomization"
    assert item["metadata"]["name"] == NAME
    assert item["status"]["phase"] == "Ready"
    assert item["status"]["productionVersion"] == 2
    assert item["status"]["endpoint"] == ENDPOINT
    assert item["spec"]["task"] == "text-classification"


def test_versions_json_and_yaml_say_the_same(history: Path) -> None:
    documents = []
    for output in ("json", "yaml"):
        result = _bespoke("versions", NAME, "--state-dir", _state(history), "--output", output)
        assert result.exit_code == ExitCode.OK, result.output
        documents.append((json.loads if output == "json" else yaml.safe_load)(result.stdout))
    assert documents[0] == documents[1]
    items = documents[0]["items"]
    assert [(v["kind"], v["spec"]["version"], v["status"]["phase"]) for v in items] == [
        ("ModelVersion", 1, "Retired"),
        ("ModelVersion", 2, "Promoted"),
        ("ModelVersion", 3, "Rejected"),
    ]


def test_exit_codes_tell_usage_errors_from_failures(history: Path, tmp_path: Path) -> None:
    usage = _bespoke("status", "--state-dir", _state(history), "--output", "xml")
    assert usage.exit_code == ExitCode.USAGE
    assert "'xml' is not one of" in usage.stderr
    missing = _bespoke("versions", "nothing", "--state-dir", tmp_path / "empty")
    assert missing.exit_code == ExitCode.FAILED
    assert "No versions of nothing" in missing.stderr
    assert missing.stdout == ""
    # Not Ready at the end of a run is its own code (ExitCode.NOT_READY, tested where a run ends
    # Failed in test_local_cli_state.py); the codes are distinct.
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


def test_status_fits_80_columns_and_prints_the_whole_endpoint(history: Path) -> None:
    result = _bespoke("status", "--state-dir", _state(history))
    assert result.exit_code == ExitCode.OK, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert f"{NAME}: serving at {ENDPOINT}" in lines  # whole, on its own line, to copy


def test_stop_leaves_no_ready_status_with_a_dead_endpoint(
    history: Path, listener: subprocess.Popen[bytes]
) -> None:
    state = CustomizationState(_state(history), NAME)
    state.save_serving(ServingRecord(listener.pid, 45678, 2, "/artifacts/v2", "digest"))

    stopped = _bespoke("stop", NAME, "--state-dir", _state(history))
    assert stopped.exit_code == ExitCode.OK, stopped.output
    assert listener.wait(timeout=30) is not None  # the server is really gone

    status = _bespoke("status", NAME, "--state-dir", _state(history), "-o", "json")
    [item] = json.loads(status.stdout)["items"]
    assert item["status"]["phase"] == "Pending"
    assert item["status"].get("endpoint") is None
    assert item["status"]["productionVersion"] == 2  # what production is has not changed
    ready = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Stopped")
    table = _bespoke("status", NAME, "--state-dir", _state(history))
    _no_traceback(table)
    assert f"{NAME}: stopped by `bespoke stop {NAME}`" in table.stdout
    assert "serving at" not in table.stdout


def test_a_rollback_serves_on_the_same_port(history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Serving enabled in the stored spec; the server is a real process that listens on the
    # port it is given, so the port is really taken while it runs and free once it stops.
    state = CustomizationState(_state(history), NAME)
    mc = state.load_customization()
    assert mc is not None
    serving = mc.spec.serving.model_copy(update={"enabled": True})
    state.save_customization(
        mc.model_copy(update={"spec": mc.spec.model_copy(update={"serving": serving})})
    )
    started: list[subprocess.Popen[bytes]] = []

    def listen(port: int, log: Path, env: object) -> int:
        code = (
            "import socket, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(120)\n"
        )
        process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        started.append(process)
        return process.pid

    monkeypatch.setattr(processes, "start_serving", listen)
    runtime = LocalRuntime(state)
    try:
        runtime.step()
        first = state.serving()
        assert first is not None
        assert first.version == 2
        runtime.pin(1)
        runtime.step()
        second = state.serving()
        assert second is not None
        assert second.version == 1
        assert second.pid != first.pid  # a new server, on the port the old one had
        assert second.port == first.port
    finally:
        runtime.stop_serving()
        for process in started:
            process.kill()
            process.wait(timeout=10)


def test_a_run_says_where_its_artifacts_go(history: Path) -> None:
    # spec.storage.uri is the cluster's; a local run keeps artifacts in its state directory.
    result = _bespoke("run", history, "--state-dir", _state(history))
    # The history's latest version (v3, a spec change) was rejected: Stalled while v2 serves.
    assert result.exit_code == ExitCode.NOT_READY, result.output
    artifacts = (_state(history) / NAME / "artifacts").resolve()
    assert f"Artifacts go to {artifacts} (a local run's storage; " in result.stdout


def test_a_local_run_honours_approved_versions_in_the_file(tmp_path: Path) -> None:
    # v1 passed its gates and awaits approval; the file approves it, as Git would on a cluster.
    file = _registry(tmp_path, [("AwaitingApproval", "AwaitingApproval", True)], production=None)
    document = yaml.safe_load(file.read_text())
    document["spec"]["evaluation"]["requireApproval"] = True
    file.write_text(kube_yaml.dump(document))
    # A run waits for the approval (from another shell) until its --timeout.
    held = _bespoke("run", file, "--state-dir", _state(file), "--timeout", "1")
    assert held.exit_code == ExitCode.NOT_READY, held.output

    document["spec"]["evaluation"]["approvedVersions"] = [1]
    file.write_text(kube_yaml.dump(document))
    approved = _bespoke("run", file, "--state-dir", _state(file))
    assert approved.exit_code == ExitCode.OK, approved.output
    assert "Approved: v1 approved for production" in approved.stdout
    versions = _bespoke("versions", NAME, "--state-dir", _state(file), "-o", "json")
    [v1] = json.loads(versions.stdout)["items"]
    assert (v1["status"]["phase"], v1["status"]["reason"]) == ("Promoted", "Approved")
