"""The node tier's session fixture: one real node (``NodeCluster``) shared by the node tests.

A missing prerequisite fails the tests with what to install (never a skip: CI must not pass a
tier that did not run). ``BESPOKE_NODE_KEEP=1`` keeps the node's logs and data after the session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.chartlib import find_tool
from tests.node.images import build_and_load, build_and_load_venv_images
from tests.node.node_cluster import NodeCluster, PrerequisiteError
from tests.operator.cluster.envtest_cluster import REPO_ROOT

_started: list[NodeCluster] = []
_timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def node() -> Iterator[NodeCluster]:
    """A running node with its control plane, in a network namespace of its own."""
    if sys.version_info[:2] != (3, 11):
        pytest.fail(
            "the node tier's trainer and serving pods run .venv's packages on Debian bookworm's "
            f"Python 3.11 (tests/node/venv-image); this .venv is Python {sys.version.split()[0]}: "
            "create it with Python 3.11",
            pytrace=False,
        )
    # The trainer and serving pods run the project's code from this virtualenv and checkout
    # (tests/node/venv-image): the node mounts both read-only into every container.
    cluster = NodeCluster(
        host_mounts={"/bespoke/venv": Path(sys.prefix), "/bespoke/src": REPO_ROOT}
    )
    try:
        cluster.start()
    except PrerequisiteError as missing:
        pytest.fail(str(missing), pytrace=False)
    _started.append(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def operator_image(node: NodeCluster) -> str:
    """The operator image, built from images/operator/Dockerfile and loaded into the node."""
    ref, seconds = build_and_load(node, "operator")
    _timings["operator image build + load"] = seconds
    return ref


@pytest.fixture(scope="session")
def loop_images(node: NodeCluster) -> dict[str, str]:
    """The trainer and serving images of the tier, tagged as the chart names the real ones."""
    import time

    began = time.monotonic()
    refs = build_and_load_venv_images(node)
    _timings["trainer + serving images build + load"] = time.monotonic() - began
    return refs


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_tool("helm")
    if path is None:
        pytest.fail("helm is not installed: run hack/tools.sh (make tools)", pytrace=False)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for cluster in _started:
        terminalreporter.write_line(
            f"node: control plane + kubelet + kube-proxy + CoreDNS Ready in "
            f"{cluster.startup_seconds:.1f}s (netns {cluster.netns})"
        )
    for what, seconds in _timings.items():
        terminalreporter.write_line(f"node: {what} in {seconds:.1f}s")
