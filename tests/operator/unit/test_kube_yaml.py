"""`kube_yaml` reads and writes YAML as kubectl (go-yaml) does, so validate and the server agree."""

from __future__ import annotations

import itertools

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


def _alias_bomb(levels: int) -> str:
    """Nine copies of the level below on each level: 9**levels values from a few hundred bytes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghij"[:levels]
    for below, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{below}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [5, 9])
def test_an_alias_bomb_is_refused_before_it_is_expanded(levels: int) -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="more than the 10000 allowed"):
        _read(_alias_bomb(levels))


def test_aliases_within_the_bound_and_merge_keys_are_read() -> None:
    assert _read(_alias_bomb(3))["c"][8][8] == ["lol"] * 9  # type: ignore[index]
    merged = _read("base: &b {p: 1, q: 2}\nmine:\n  <<: *b\n  q: 3\n")
    assert merged == {"base": {"p": 1, "q": 2}, "mine": {"p": 1, "q": 3}}


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="contains it"):
        _read("a: &a [1, *a]\n")
