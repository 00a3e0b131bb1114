"""YAML as kubectl reads and writes it (go-yaml, YAML 1.2 numbers), for files meant for a cluster.

PyYAML follows YAML 1.1, where `2e-3` and `1.0e3` are strings; kubectl reads them as numbers,
which a schema wanting a string refuses. Reading a file here as kubectl will, and writing strings
that look like numbers quoted, keeps `bespoke validate` and the API server on the same values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar

import yaml

__all__ = ["dump", "load_all"]


class _KubectlLoader(yaml.SafeLoader):
    """go-yaml's numbers; and, unlike kubectl, which silently keeps one, a key given twice is
    refused."""

    # go-yaml (YAML 1.1 booleans) also reads y/Y/n/N as booleans, which PyYAML keeps strings.
    bool_values: ClassVar[dict[str, bool]] = {
        **yaml.SafeLoader.bool_values,
        "y": True,
        "n": False,
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: merged keys may be overridden, that is the point
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice, and only one value would count — keep one",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_KubectlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
)
# go-yaml's float form; appended after PyYAML's resolvers, so it only adds what they leave out.
_KubectlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def load_all(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, read as kubectl reads them."""
    return yaml.load_all(text, Loader=_KubectlLoader)


class _KubectlDumper(yaml.SafeDumper):
    """Quotes strings a YAML 1.2 reader would take for numbers or booleans."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _looks_like_scalar(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


def _looks_like_scalar(value: str) -> bool:
    if value.lower() in ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"):
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


_KubectlDumper.add_representer(str, _represent_str)


def dump(document: object) -> str:
    """YAML that kubectl reads back as the same values (strings that look like numbers quoted)."""
    return yaml.dump(document, Dumper=_KubectlDumper, sort_keys=False, width=100)
