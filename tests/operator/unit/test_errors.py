"""The operator's error tree: the drawing in `errors` is the hierarchy the code has."""

from __future__ import annotations

import re

from bespoke_operator import errors


def test_the_drawn_hierarchy_is_the_class_hierarchy() -> None:
    drawing = (errors.__doc__ or "").split("Hierarchy::", 1)[1].split("\n\n")[1]
    parents: list[str] = []
    drawn = set()
    for line in drawing.splitlines():
        match = re.match(r"^[\s│├└─]*(\w+Error)\b", line)
        if not match:
            continue  # a continuation line of a description
        name = match.group(1)
        depth = line.index(name) // 4 - 1  # the root at column 4, each level four more
        cls = getattr(errors, name)
        del parents[depth:]
        if parents:
            assert cls.__bases__ == (getattr(errors, parents[-1]),), name
        parents.append(name)
        drawn.add(name)
    assert drawn == set(errors.__all__)


def test_every_operator_error_is_a_bespoke_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.BespokeError)
