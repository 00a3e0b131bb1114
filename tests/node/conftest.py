"""The node tier's session fixture: one real node (``NodeCluster``) shared by the node tests.

A missing prerequisite fails the tests with what to install (never a skip: CI must not pass a
tier that did not run). ``BESPOKE_NODE_KEEP=1`` keeps the node's logs and data after the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.node.node_cluster import NodeCluster, PrerequisiteError

_started: list[NodeCluster] = []


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for cluster in _started:
        terminalreporter.write_line(
            f"node: control plane + kubelet + kube-proxy + CoreDNS Ready in "
            f"{cluster.startup_seconds:.1f}s (netns {cluster.netns})"
        )
