"""`bespoke validate`: examples pass, every invalid fixture fails with its field and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bespoke_operator.api import ModelCustomization, check_update
from bespoke_operator.cli import app
from bespoke_operator.cli.validate import load_file, validate_text
from bespoke_operator.errors import ResourceValidationError

from .fixtures import FIXTURES, InvalidFixture, example_files, invalid_fixtures

runner = CliRunner()


def test_examples_cover_the_three_documented_kinds_of_customization() -> None:
    specs = [load_file(path)[0] for path in example_files()]
    methods = {
        (r.spec.task, r.spec.method.type) for r in specs if isinstance(r, ModelCustomization)
    }
    assert ("text-classification", "lora") in methods
    assert ("causal-lm", "lora") in methods
    assert ("causal-lm", "qlora") in methods


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: ok" in result.output


@pytest.mark.parametrize("fixture", invalid_fixtures(), ids=lambda f: f.path.stem)
def test_every_invalid_fixture_fails_naming_field_and_reason(fixture: InvalidFixture) -> None:
    result = runner.invoke(app, ["validate", str(fixture.path)])
    assert result.exit_code == 1
    assert fixture.expect in result.output
    prefix = f"{fixture.path}: {fixture.field}: " if fixture.field else f"{fixture.path}: "
    assert prefix in result.output
    assert "Traceback" not in result.output


def test_invalid_fixture_set_covers_every_rule_and_error_class() -> None:
    names = {f.path.stem for f in invalid_fixtures()}
    assert {
        "qlora-without-gpu",
        "trust-remote-code-unpinned",
        "gate-metric-wrong-task",
        "champion-delta-wrong-task",
        "pinned-version-zero",
        "split-fraction-out-of-range",
        "typo-field",
        "wrong-type",
        "bad-yaml",
        "unknown-kind",
    } <= names


def test_all_problems_in_a_file_are_reported_not_only_the_first() -> None:
    text = (FIXTURES / "invalid" / "qlora-without-gpu.yaml").read_text() + (
        "  trainng: {}\n  serving:\n    replicas: many\n"
    )
    _, problems = validate_text(text, "many.yaml")
    paths = {p.path for p in problems}
    # The spec's rules run once the fields parse: the validator sets the typo and the bad
    # number aside and validates the rest, so the qlora rule is reported too.
    assert paths == {"spec.trainng", "spec.serving.replicas", "spec.training.resources.gpus"}
    # Cross-field rules run once the fields parse; then every broken rule is listed together.
    fixed = text.replace("  trainng: {}\n  serving:\n    replicas: many\n", "") + (
        "  evaluation:\n    gates:\n      - metric: perplexity\n        max: '3'\n"
    )
    _, problems = validate_text(fixed, "rules.yaml")
    assert {p.path for p in problems} == {"spec.training.resources.gpus", "spec.evaluation.gates"}


def test_several_documents_are_each_validated() -> None:
    good = (example_files()[0]).read_text()
    bad = (FIXTURES / "invalid" / "wrong-type.yaml").read_text()
    resources, problems = validate_text(good + "\n---\n" + bad, "both.yaml")
    assert len(resources) == 1
    assert [p.source for p in problems] == ["both.yaml (document 2)"]


def test_numbers_are_not_coerced_where_the_crd_says_integer() -> None:
    text = (FIXTURES / "invalid" / "wrong-type.yaml").read_text().replace("three", '"3"')
    _, problems = validate_text(text, "quoted.yaml")
    assert [p.path for p in problems] == ["spec.training.epochs"]


def test_missing_required_field_and_non_mapping_are_explained() -> None:
    doc = yaml.safe_load((example_files()[0]).read_text())
    del doc["spec"]["storage"]
    # As JSON (valid YAML): PyYAML's dumper leaves "1e-4" unquoted, which kubectl reads as a number.
    _, problems = validate_text(json.dumps(doc), "nostore.yaml")
    assert [str(p) for p in problems] == [
        "nostore.yaml: spec.storage: required field is missing — add it"
    ]
    _, problems = validate_text("- just\n- a list\n", "list.yaml")
    assert "must be a mapping" in problems[0].message


def test_unreadable_and_empty_files_fail_cleanly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ResourceValidationError, match="holds no resource"):
        load_file(empty)
    with pytest.raises(ResourceValidationError, match="cannot read the file"):
        load_file(tmp_path / "missing.yaml")


def test_task_cannot_change_on_update() -> None:
    before = load_file(FIXTURES / "updates" / "task-change" / "before.yaml")[0]
    after = load_file(FIXTURES / "updates" / "task-change" / "after.yaml")[0]
    assert isinstance(before, ModelCustomization)
    assert isinstance(after, ModelCustomization)
    expected = InvalidFixture.read(FIXTURES / "updates" / "task-change" / "after.yaml").expect
    assert [v.message for v in check_update(before.spec, before.spec)] == []
    assert expected in check_update(before.spec, after.spec)[0].message


def test_a_broken_nested_rule_does_not_hide_the_spec_rules() -> None:
    text = (FIXTURES / "invalid" / "gate-min-above-max.yaml").read_text() + (
        "  method:\n    type: qlora\n"
    )
    _, problems = validate_text(text, "both.yaml")
    assert {p.path for p in problems} == {
        "spec.evaluation.gates[0].max",
        "spec.training.resources.gpus",
    }


def test_a_value_set_aside_does_not_raise_rules_about_its_default() -> None:
    # gpus is wrong; with it set aside its default (0) would break the qlora rule, but that says
    # nothing about what the user wrote, so only the type error is reported.
    text = (FIXTURES / "invalid" / "qlora-without-gpu.yaml").read_text() + (
        "  training:\n    resources:\n      gpus: one\n"
    )
    _, problems = validate_text(text, "one.yaml")
    assert [p.path for p in problems] == ["spec.training.resources.gpus"]
    assert "whole number" in problems[0].message
