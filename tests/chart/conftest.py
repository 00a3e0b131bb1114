"""Fixtures for the chart tests: the real tools, and the chart rendered by helm."""

from __future__ import annotations

import pytest
import yaml

from tests.chart.chartlib import CHART_DIR, TOOLS_HINT, Manifest, Render, find_tool, run_helm


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed: {TOOLS_HINT}")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_tool("prometheus")


@pytest.fixture(scope="session")
def render(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Render the chart with `helm template` and return its non-empty documents."""
    cache: dict[str, list[Manifest]] = {}

    def _render(*values: Manifest, namespace: str = "bespoke-system") -> list[Manifest]:
        key = yaml.safe_dump([namespace, *values])
        if key not in cache:
            result = run_helm(
                helm,
                "template",
                "rel",
                str(CHART_DIR),
                "--namespace",
                namespace,
                values=list(values),
                tmp_dir=tmp_path_factory.mktemp("values"),
            )
            assert result.returncode == 0, result.stderr
            cache[key] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[key]

    return _render
