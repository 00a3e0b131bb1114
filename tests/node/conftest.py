"""The node tier's session fixture: one real node (``NodeCluster``) shared by the node tests.

A missing prerequisite fails the tests with what to install (never a skip: CI must not pass a
tier that did not run). ``BESPOKE_NODE_KEEP=1`` keeps the node's logs and data after the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chart.chartlib import find_tool
from tests.node.images import build_and_load
from tests.node.node_cluster import NodeCluster, PrerequisiteError

_started: list[NodeCluster] = []
_timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def node() -> Iterator[NodeCluster]:
    """A running node with its control plane, in a network namespace of its own."""
    cluster = NodeCluster()
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
