"""`bespoke run` on bad input: the validation messages, fast failures, and nothing started."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from bespoke_operator import kube_yaml
from bespoke_operator.cli import app
from tests.operator.unit.api.fixtures import FIXTURES

runner = CliRunner()
FLAGSHIP = (
    Path(__file__).resolve().parents[3] / "examples" / "support-tickets" / "customization.yaml"
)


def test_invalid_file_prints_the_validate_messages_and_starts_nothing(tmp_path: Path) -> None:
    bad = FIXTURES / "invalid" / "qlora-without-gpu.yaml"
    validated = runner.invoke(app, ["validate", str(bad)])
    ran = runner.invoke(app, ["run", str(bad), "--state-dir", str(tmp_path / "state")])
    assert ran.exit_code == 1
    problem_lines = [line for line in validated.output.splitlines() if str(bad) in line]
    assert problem_lines
    for line in problem_lines:
        assert line in ran.output
    assert not (tmp_path / "state").exists()


def test_missing_dataset_fails_fast_naming_field_and_location(tmp_path: Path) -> None:
    document = yaml.safe_load(FLAGSHIP.read_text())
    document["spec"]["dataset"]["train"]["uri"] = "data/nowhere.jsonl"
    path = tmp_path / "customization.yaml"
    path.write_text(kube_yaml.dump(document))
    result = runner.invoke(app, ["run", str(path), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 1
    assert "spec.dataset.train.uri" in result.output
    assert str(tmp_path / "data" / "nowhere.jsonl") in result.output
    assert not (tmp_path / "state").exists()


def test_every_unusable_location_is_named_at_once(tmp_path: Path) -> None:
    document = yaml.safe_load(FLAGSHIP.read_text())
    document["spec"]["dataset"]["train"]["uri"] = "data/nowhere.jsonl"
    document["spec"]["dataset"]["test"] = {"uri": "pvc://bespoke-data/test.jsonl"}
    document["spec"]["baseModel"]["uri"] = "/models/none"
    path = tmp_path / "customization.yaml"
    path.write_text(kube_yaml.dump(document))

    result = runner.invoke(app, ["run", str(path), "--state-dir", str(tmp_path / "state")])

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert [line.split(": ")[1] for line in lines] == [
        "spec.baseModel.uri",
        "spec.dataset.train.uri",
        "spec.dataset.test.uri",
        "spec.monitoring.onDrift.dataset.uri",  # relative to the file, so missing here too
    ]
    assert "exists only on a cluster" in lines[2]
    assert not (tmp_path / "state").exists()


def test_status_and_versions_of_an_empty_state_dir_say_so(tmp_path: Path) -> None:
    status = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert status.exit_code == 1
    assert "No customizations" in status.output
    versions = runner.invoke(app, ["versions", "nothing", "--state-dir", str(tmp_path)])
    assert versions.exit_code == 1
    assert "No versions of nothing" in versions.output
