"""Reads the invalid-resource fixtures and their expectation headers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples"


@dataclass(frozen=True)
class InvalidFixture:
    """An invalid file and what every validator must say about it."""

    path: Path
    expect: str
    field: str
    server: bool

    @classmethod
    def read(cls, path: Path) -> InvalidFixture:
        headers: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("# "):
                break
            key, _, value = line[2:].partition(":")
            headers[key.strip()] = value.strip()
        return cls(path, headers["expect"], headers.get("field", ""), "server" not in headers)


def invalid_fixtures() -> list[InvalidFixture]:
    """Every file in tests/fixtures/invalid, sorted."""
    return [InvalidFixture.read(p) for p in sorted((FIXTURES / "invalid").glob("*.yaml"))]


def example_files() -> list[Path]:
    """Every ModelCustomization example in examples/ (one level down too)."""
    return sorted(
        p for p in EXAMPLES.rglob("*.yaml") if "kind: ModelCustomization" in p.read_text()
    )
