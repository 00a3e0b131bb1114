"""YAML as kubectl reads and writes it (go-yaml, YAML 1.2 numbers), for files meant for a cluster.

PyYAML follows YAML 1.1, where `2e-3` and `1.0e3` are strings; kubectl reads them as numbers,
which a schema wanting a string refuses. Reading a file here as kubectl will, and writing strings
that look like numbers quoted, keeps `bespoke validate` and the API server on the same values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar, Final

import yaml

__all__ = ["MAX_ALIAS_EXPANSION", "dump", "load_all"]

#: Most nodes that aliases (`*name`, `<<: *name`) may add to one document when expanded. A
#: resource file needs a handful; a few hundred bytes of nested aliases ("billion laughs") would
#: otherwise expand to billions of values for the validators to walk.
MAX_ALIAS_EXPANSION: Final = 10_000


class _KubectlLoader(yaml.SafeLoader):
    """go-yaml's numbers; and, unlike kubectl, which silently keeps one, a key given twice is
    refused."""

    # go-yaml (YAML 1.1 booleans) also reads y/Y/n/N as booleans, which PyYAML keeps strings.
    bool_values: ClassVar[dict[str, bool]] = {
        **yaml.SafeLoader.bool_values,
        "y": True,
        "n": False,
    }

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            _check_alias_expansion(node)
        return node

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


def _check_alias_expansion(root: yaml.Node) -> None:
    """Refuses a document whose aliases expand beyond `MAX_ALIAS_EXPANSION` nodes, or into
    themselves; the composed graph shares aliased nodes, so this walk visits each node once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def expanded(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "an alias refers to a node that contains it — remove the cycle",
                node.start_mark,
            )
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        size = 1 + sum(expanded(child) for child in children)
        open_nodes.discard(key)
        sizes[key] = size
        return size

    added = expanded(root) - len(sizes)
    if added > MAX_ALIAS_EXPANSION:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"aliases (*name) expand this document by {added} values, more than the "
            f"{MAX_ALIAS_EXPANSION} allowed — write the values out instead of repeating anchors",
            root.start_mark,
        )


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
