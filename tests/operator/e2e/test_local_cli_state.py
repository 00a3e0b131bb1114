"""`bespoke run`, `rollback` and `traffic` over an existing state directory, without training.

The state directory is built as earlier runs leave it: the flagship file admitted, v1 recorded by
the decision core's own CreateVersion, later versions and their decisions written as the runtime
writes them. Serving is disabled in the file, so a run over it decides, prints and ends without
starting a process: these tests exercise the commands, not the trainer or the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from bespoke_operator import kube_yaml
from bespoke_operator.api import ModelCustomizationStatus, ModelVersion, ModelVersionStatus
from bespoke_operator.cli import app
from bespoke_operator.cli.run import ExitCode
from bespoke_operator.reconcile import CreateVersion, decide
from bespoke_operator.runtimes.local.runtime import LocalRuntime, prepare
from bespoke_operator.runtimes.local.state import CustomizationState
from tests.operator.unit.api.fixtures import FIXTURES, InvalidFixture

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "support-tickets"
NAME = "support-tickets"
OLD_LOG_LINE = "2026-01-01 10:00:00 INFO bespoke_trainer.train: Step 10/40 loss 9.99 from before"


def _write_file(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(kube_yaml.dump(document))
    return path


def _document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLE / "customization.yaml").read_text())
    spec = document["spec"]
    spec["dataset"]["train"]["uri"] = str(EXAMPLE / "data" / "train.jsonl")
    drift_data = EXAMPLE / "data" / "recent-labelled.jsonl"
    spec["monitoring"]["onDrift"]["dataset"]["uri"] = str(drift_data)
    spec["serving"]["enabled"] = False  # a run over the registry starts no server
    return document


def _status(phase: str, reason: str, artifacts: Path | None) -> ModelVersionStatus:
    return ModelVersionStatus.model_validate(
        {
            "phase": phase,
            "reason": reason,
            "message": f"{phase} ({reason})",
            "artifactUri": str(artifacts) if artifacts else None,
        }
    )


def _registry(root: Path, decisions: list[tuple[str, str, bool]], production: int | None) -> Path:
    """The flagship's file and a state dir holding one version per `(phase, reason, artifacts)`.

    Every version has the file's training hash, so a run over it trains nothing.
    """
    file = _write_file(root / "customization.yaml", _document())
    state = CustomizationState(root / "state", NAME)
    runtime = LocalRuntime(state)
    runtime.admit(prepare(yaml.safe_load(file.read_text()), root, state))
    mc = runtime.customization()
    decision = decide(mc, runtime.observe(mc, read_drift=False))
    first = next(a.version for a in decision.actions if isinstance(a, CreateVersion))
    for number, (phase, reason, has_artifacts) in enumerate(decisions, start=1):
        artifacts = state.artifacts / "versions" / f"v{number}"
        if has_artifacts:
            artifacts.mkdir(parents=True)
        state.save_version(
            ModelVersion.model_validate(
                {
                    **first.model_dump(mode="json", by_alias=True),
                    "metadata": {**first.metadata.model_dump(), "name": f"{NAME}-v{number}"},
                    "spec": {
                        **first.spec.model_dump(mode="json", by_alias=True),
                        "version": number,
                        "trigger": "Initial" if number == 1 else "SpecChange",
                    },
                    "status": _status(
                        phase, reason, artifacts if has_artifacts else None
                    ).model_dump(mode="json", by_alias=True),
                }
            )
        )
    status = ModelCustomizationStatus.model_validate(
        {"productionVersion": production, "latestVersion": len(decisions)}
    )
    state.save_customization(mc.model_copy(update={"status": status}))
    return file


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """v1 retired, v2 in production, v3 failed without artifacts, v4 rejected by its gates."""
    return _registry(
        tmp_path,
        [
            ("Retired", "Superseded", True),
            ("Promoted", "GatesPassed", True),
            ("Failed", "InvalidData", False),
            ("Rejected", "GatesFailed", True),
        ],
        production=2,
    )


#: How a run over `history` ends: its latest version (v4, a spec change) was rejected by its
#: gates, so the customization is Stalled/GatesFailed while an earlier version serves.
HISTORY_ENDS = ExitCode.NOT_READY


def _bespoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def _no_traceback(result: Result) -> None:
    """Ended by the command's own exit, not by an exception escaping it."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info


def _state(file: Path) -> Path:
    return file.parent / "state"


def _stored(file: Path) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(
        (_state(file) / NAME / "customization.json").read_text(encoding="utf-8")
    )
    return stored


def _pinned(file: Path) -> int | None:
    pinned: int | None = _stored(file)["spec"]["serving"]["pinnedVersion"]
    return pinned


# --- serving disabled ------------------------------------------------------------------------


def test_a_run_with_serving_disabled_ends_once_a_version_is_promoted(tmp_path: Path) -> None:
    # v1 passed its gates (Promoted) and nothing is in production yet: what a run that trained
    # it leaves. With serving disabled there is nothing to roll out, so the run ends here.
    file = _registry(tmp_path, [("Promoted", "GatesPassed", True)], production=None)
    result = _bespoke("run", file, "--state-dir", _state(file), "--timeout", "120")
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "Stopped after" not in result.output
    assert "production version: 1" in result.stdout
    assert "v1 is the production version; serving is disabled" in result.stdout
    status = _stored(file)["status"]
    assert (status["phase"], status["productionVersion"]) == ("Ready", 1)
    assert status.get("endpoint") is None
    assert not (_state(file) / NAME / "serving.json").exists()  # no server was started


# --- rollback --------------------------------------------------------------------------------


def test_rollback_pin_survives_rerunning_the_same_file(history: Path) -> None:
    pinned = _bespoke("rollback", NAME, "1", "--state-dir", _state(history))
    assert pinned.exit_code == 0, pinned.output
    assert "Pinned v1" in pinned.stdout
    assert "same file keeps the pin" in pinned.stdout  # the rule is stated where it applies
    assert _pinned(history) == 1
    generation = _stored(history)["metadata"]["generation"]

    again = _bespoke("run", history, "--state-dir", _state(history))
    assert again.exit_code == HISTORY_ENDS, again.output
    assert "Serving v1 as pinned by `bespoke rollback`" in again.stdout
    assert _pinned(history) == 1
    assert _stored(history)["metadata"]["generation"] == generation  # nothing changed


def test_an_edited_file_replaces_the_rollback_pin(history: Path) -> None:
    assert _bespoke("rollback", NAME, "1", "--state-dir", _state(history)).exit_code == 0
    document = yaml.safe_load(history.read_text())
    document["spec"]["serving"]["limits"]["maxTextsPerRequest"] = 16
    _write_file(history, document)

    edited = _bespoke("run", history, "--state-dir", _state(history))
    assert edited.exit_code == HISTORY_ENDS, edited.output
    assert "changed since `bespoke rollback` pinned v1" in edited.stdout
    assert _pinned(history) is None  # the file has no pin: the gates decide again
    assert _stored(history)["spec"]["serving"]["limits"]["maxTextsPerRequest"] == 16

    # The file's own pin is the file's: a rollback over it and a rerun keep the rollback's,
    # and an edit brings the file's back.
    document["spec"]["serving"]["pinnedVersion"] = 2
    _write_file(history, document)
    assert _bespoke("run", history, "--state-dir", _state(history)).exit_code == HISTORY_ENDS
    assert _pinned(history) == 2
    assert _bespoke("rollback", NAME, "1", "--state-dir", _state(history)).exit_code == 0
    assert _bespoke("run", history, "--state-dir", _state(history)).exit_code == HISTORY_ENDS
    assert _pinned(history) == 1
    document["spec"]["serving"]["limits"]["maxTextsPerRequest"] = 8
    _write_file(history, document)
    assert _bespoke("run", history, "--state-dir", _state(history)).exit_code == HISTORY_ENDS
    assert _pinned(history) == 2


@pytest.mark.parametrize(
    ("version", "why"),
    [
        ("3", "v3 cannot be served: it is Failed (InvalidData) and has no artifacts"),
        ("4", "v4 cannot be served: it is Rejected (GatesFailed): it did not pass its gates"),
        ("9", "support-tickets has no version 9"),
    ],
)
def test_rollback_refuses_a_version_that_cannot_be_served(
    history: Path, version: str, why: str
) -> None:
    before = (_state(history) / NAME / "customization.json").read_bytes()
    refused = _bespoke("rollback", NAME, version, "--state-dir", _state(history))
    assert refused.exit_code == 1
    assert why in refused.stderr
    assert "Versions that can be served: v1, v2" in refused.stderr
    assert refused.stdout == ""
    assert (_state(history) / NAME / "customization.json").read_bytes() == before
    assert not (_state(history) / NAME / "rollback.json").exists()


# --- admission -------------------------------------------------------------------------------


def test_task_change_is_refused_with_the_api_servers_message(history: Path) -> None:
    expected = InvalidFixture.read(FIXTURES / "updates" / "task-change" / "after.yaml")
    stored = {
        p.name: p.read_bytes() for p in (_state(history) / NAME).rglob("*.json") if p.is_file()
    }
    document = yaml.safe_load(history.read_text())
    document["spec"]["task"] = "causal-lm"
    document["spec"]["evaluation"] = {"gates": [{"metric": "evalLoss", "max": "2.0"}]}
    document["spec"]["training"]["earlyStopping"]["metric"] = "evalLoss"
    changed = _write_file(history.parent / "causal.yaml", document)
    assert _bespoke("validate", changed).exit_code == 0  # a valid file, just not as an update

    refused = _bespoke("run", changed, "--state-dir", _state(history))
    assert refused.exit_code == 1
    assert f"{changed}: {expected.field}: {expected.expect}" in refused.stderr
    assert "--state-dir" in refused.stderr  # and what to do about it locally
    assert "Resuming" not in refused.stdout
    after = {
        p.name: p.read_bytes() for p in (_state(history) / NAME).rglob("*.json") if p.is_file()
    }
    assert after == stored  # untouched: no version, no new generation


# --- output of a resumed or failed run -------------------------------------------------------


def test_resumed_run_prints_only_new_trainer_lines(history: Path) -> None:
    log = _state(history) / NAME / "runs" / "v3-1" / "trainer.log"
    log.parent.mkdir(parents=True)
    log.write_text(OLD_LOG_LINE + "\n")
    resumed = _bespoke("run", history, "--state-dir", _state(history))
    assert resumed.exit_code == HISTORY_ENDS, resumed.output
    assert "from before" not in resumed.output
    assert f"{_state(history) / NAME / 'runs'}/*/trainer.log" in resumed.stdout


def test_failed_run_points_at_the_failure_not_at_traffic_or_rollback(tmp_path: Path) -> None:
    file = _registry(tmp_path, [("Failed", "InvalidData", False)], production=None)
    failed = _bespoke("run", file, "--state-dir", _state(file))
    assert failed.exit_code == 3  # ExitCode.NOT_READY: ended Failed, not a usage error
    assert "Stalled (InvalidData)" in failed.stderr
    next_line = next(line for line in failed.stdout.splitlines() if line.startswith("Next:"))
    assert f"`bespoke versions {NAME}` shows why v1 failed" in next_line
    assert f"fix {file} and run it again" in next_line
    assert "--traffic" not in next_line
    assert "rollback" not in next_line


# --- bad input: one line on stderr, no traceback ---------------------------------------------


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    occupied = tmp_path / "afile"
    occupied.write_text("not a folder")
    result = _bespoke("run", EXAMPLE / "customization.yaml", "--state-dir", occupied)
    _no_traceback(result)
    assert result.exit_code == 1
    assert f"--state-dir {occupied}: cannot keep state in" in result.stderr
    assert "pass a folder you can write to" in result.stderr
    assert result.stdout == ""
    assert occupied.read_text() == "not a folder"


def test_unreadable_state_is_reported_by_every_command(history: Path) -> None:
    (_state(history) / NAME / "customization.json").write_text("{ truncated")
    for args in (
        ["run", history],
        ["status", NAME],
        ["rollback", NAME, "1"],
        ["stop", NAME],
    ):
        result = _bespoke(*args, "--state-dir", _state(history))
        _no_traceback(result)
        assert result.exit_code == 1, args
        assert "customization.json cannot be read" in result.stderr, args
        assert f"move {_state(history) / NAME} aside" in result.stderr, args


@pytest.mark.parametrize(
    ("command", "damaged", "content"),
    [("versions", "versions/v2.json", "[]"), ("stop", "serving.json", "{}")],
)
def test_unreadable_state_file_names_the_state_dir_to_move(
    history: Path, command: str, damaged: str, content: str
) -> None:
    (_state(history) / NAME / damaged).write_text(content)
    result = _bespoke(command, NAME, "--state-dir", _state(history))
    _no_traceback(result)
    assert result.exit_code == 1
    assert f"{_state(history) / NAME / damaged} cannot be read" in result.stderr
    assert f"move {_state(history) / NAME} aside" in result.stderr


def test_negative_timeout_is_a_usage_error(history: Path) -> None:
    result = _bespoke("run", history, "--state-dir", _state(history), "--timeout", "-1")
    assert result.exit_code == 2
    assert "--timeout" in result.stderr
    assert not (_state(history) / NAME / "rollback.json").exists()


@pytest.mark.parametrize(
    "url", ["notaurl", "127.0.0.1:3000", "ftp://127.0.0.1:3000", "http://[::1", "http://h:port"]
)
def test_traffic_to_something_that_is_not_a_url_is_refused(url: str) -> None:
    result = _bespoke("traffic", url, "--duration", "1")
    _no_traceback(result)
    assert result.exit_code == 1
    assert f"{url} is not a service URL: pass http://HOST:PORT" in result.stderr


def test_traffic_finds_the_example_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no examples/ here
    result = _bespoke("traffic", "http://127.0.0.1:9", "--profile", "nope")
    _no_traceback(result)
    assert result.exit_code == 1
    assert f"pick one of drifted, reference in {EXAMPLE / 'traffic'}" in result.stderr


def test_traffic_file_without_texts_is_reported(tmp_path: Path) -> None:
    (tmp_path / "traffic").mkdir()
    (tmp_path / "traffic" / "reference.jsonl").write_text('{"text": "ok"}\nnot json\n')
    result = _bespoke("traffic", "http://127.0.0.1:9", "--example-dir", tmp_path)
    _no_traceback(result)
    assert result.exit_code == 1
    assert str(tmp_path / "traffic" / "reference.jsonl") in result.stderr


def test_versions_are_listed_by_number(tmp_path: Path) -> None:
    retired = [("Retired", "Superseded", True)] * 10
    file = _registry(tmp_path, [*retired, ("Promoted", "GatesPassed", True)], production=11)
    listed = _bespoke("versions", NAME, "--state-dir", _state(file))
    assert listed.exit_code == 0, listed.output
    rows = [line.split()[1] for line in listed.stdout.splitlines() if line.startswith("│ v")]
    assert rows == [f"v{n}" for n in range(1, 12)]
