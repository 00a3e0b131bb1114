"""The project's images for the node tier, built with buildah from the Dockerfiles in images/.

The operator image is built from ``images/operator/Dockerfile`` on every run (buildah's layer
cache makes an unchanged tree a few seconds), on the Debian bookworm + Python base that
``hack/node.sh`` makes (no other registry is reachable here), and tagged exactly as the chart
names it, so ``helm install`` with default values runs it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

from tests.node.node_cluster import BASE_IMAGE, NodeCluster, NodeError, node_cache
from tests.operator.cluster.envtest_cluster import REPO_ROOT

__all__ = ["build_and_load", "build_and_load_venv_images", "chart_image"]

VENV_IMAGE = "localhost/bespoke-node/venv:dev"

_CHART = yaml.safe_load((REPO_ROOT / "charts" / "bespoke" / "Chart.yaml").read_text())
_VALUES = yaml.safe_load((REPO_ROOT / "charts" / "bespoke" / "values.yaml").read_text())


def chart_image(component: str) -> str:
    """The image reference the chart's default values give ``component``."""
    return f"{_VALUES[component]['image']['repository']}:{_CHART['appVersion']}"


def _buildah(*args: str, timeout: float = 1500) -> str:
    cache = node_cache()
    command = [
        "buildah",
        "--root",
        str(cache / "storage"),
        "--runroot",
        "/run/bespoke-node/storage",
        *args,
    ]
    env = {**os.environ, "CONTAINERS_CONF": str(REPO_ROOT / "hack" / "node" / "containers.conf")}
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise NodeError(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def build_and_load(node: NodeCluster, component: str) -> tuple[str, float]:
    """Build ``images/<component>/Dockerfile``, load it into the node; return (ref, seconds)."""
    began = time.monotonic()
    ref = chart_image(component)
    dockerfile = REPO_ROOT / "images" / component / "Dockerfile"
    _buildah(
        "bud",
        "--layers",
        "--quiet",
        "--network=host",
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        f"--ignorefile={dockerfile}.dockerignore",
        "-f",
        str(dockerfile),
        "-t",
        ref,
        str(REPO_ROOT),
    )
    archive = node.work_dir / f"{component}.tar"
    _buildah("push", "--quiet", ref, f"docker-archive:{archive}:{ref}")
    node.import_image(archive)
    archive.unlink()
    return ref, time.monotonic() - began


def _run_config(component: str) -> list[str]:
    """The ENTRYPOINT/CMD lines of the real image's Dockerfile, as buildah config flags."""
    flags = []
    for line in (REPO_ROOT / "images" / component / "Dockerfile").read_text().splitlines():
        for instruction in ("ENTRYPOINT", "CMD"):
            if line.startswith(f"{instruction} ["):
                flags.append(f"--{instruction.lower()}={line.removeprefix(instruction).strip()}")
    return flags


def build_and_load_venv_images(node: NodeCluster) -> dict[str, str]:
    """The trainer and serving images of the tier (tests/node/venv-image), tagged as the chart
    names the real ones and run as they run (their Dockerfiles' ENTRYPOINT and CMD)."""
    context = Path(__file__).with_name("venv-image")
    _buildah(
        "bud",
        "--layers",
        "--quiet",
        "--network=host",
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        "-f",
        str(context / "Containerfile"),
        "-t",
        VENV_IMAGE,
        str(context),
    )
    refs = {}
    for component in ("trainer", "serving"):
        ref = chart_image(component)
        container = _buildah("from", "--quiet", "--pull-never", VENV_IMAGE).strip()
        try:
            _buildah("config", "--entrypoint=[]", "--cmd=[]", container)
            _buildah("config", *_run_config(component), container)
            _buildah("commit", "--quiet", container, ref)
        finally:
            _buildah("rm", container)
        archive = node.work_dir / f"{component}.tar"
        _buildah("push", "--quiet", ref, f"docker-archive:{archive}:{ref}")
        node.import_image(archive)
        archive.unlink()
        refs[component] = ref
    return refs
