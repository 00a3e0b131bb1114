"""`kube_yaml` reads and writes YAML as kubectl (go-yaml) does, so validate and the server agree."""

from __future__ import annotations

import pytest
import yaml

from bespoke_operator import kube_yaml


def _read(text: str) -> object:
    return next(kube_yaml.load_all(text))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2e-3", 0.002),  # PyYAML alone: the string "2e-3"
        ("1.0e3", 1000.0),  # PyYAML alone: a string (it wants a sign in the exponent)
        ("y", True),
        ("N", False),
        ("yes", True),
        ('"2e-3"', "2e-3"),
        ("12", 12),
        ("abc", "abc"),
    ],
)
def test_scalars_are_read_as_kubectl_reads_them(text: str, value: object) -> None:
    assert _read(f"a: {text}\n") == {"a": value}


def test_a_key_given_twice_is_refused_with_its_line() -> None:
    with pytest.raises(yaml.constructor.ConstructorError) as raised:
        _read("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert "'c' is given twice" in str(raised.value)
    assert raised.value.problem_mark is not None
    assert raised.value.problem_mark.line == 3


def test_merge_keys_work_and_may_be_overridden() -> None:
    text = "base: &base {x: 1, y2: 2}\nmine:\n  <<: *base\n  x: 3\n"
    assert _read(text) == {"base": {"x": 1, "y2": 2}, "mine": {"x": 3, "y2": 2}}


@pytest.mark.parametrize("value", ["2e-4", "1.0e3", "y", "n", "on", "null", "12", "0.5"])
def test_strings_that_look_like_other_scalars_are_written_quoted(value: str) -> None:
    written = kube_yaml.dump({"a": value})
    assert _read(written) == {"a": value}
    assert yaml.safe_load(written) == {"a": value}
