"""Two operator processes, one Lease: the leader is SIGKILLed mid-training and the standby
finishes its work, against the real kube-apiserver and kube-controller-manager.

The operators are real `kopf run` processes (a SIGKILL has to kill a process, not a thread) with
the chart's leader-election settings and default lease timings (15 s duration, 10 s renew
deadline, 2 s retry).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster.envtest_cluster import REPO_ROOT, EnvtestCluster, wait_for
from tests.operator.cluster.test_operator import Cluster, _summary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LEASE_DURATION_S = 15
# The bound for a failover: a standby waits out the lease duration, then starts watching.
FAILOVER_BOUND_S = 30


class Operator:
    """One `kopf run` process with leader election on, its log in a file."""

    def __init__(self, envtest: EnvtestCluster, namespace: str, identity: str, logs: Path) -> None:
        self.identity = identity
        self.log = logs / f"{identity}.log"
        env = dict(
            os.environ,
            KUBECONFIG=str(envtest.kubeconfig),
            PYTHONPATH=os.pathsep.join(
                str(REPO_ROOT / part) for part in ("operator", "trainer", "serving", "monitor")
            ),
            POD_ID=identity,
            BESPOKE_LEADER_ELECTION="1",
            BESPOKE_LEADER_ELECTION_NAMESPACE=namespace,
            BESPOKE_LEASE_DURATION_SECONDS=str(LEASE_DURATION_S),
            BESPOKE_METRICS_PORT="0",
            BESPOKE_RECONCILE_INTERVAL_SECONDS="3",
        )
        command = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--verbose", "-m", "bespoke_operator.handlers"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def namespace(envtest: EnvtestCluster, envtest_controller_manager: EnvtestCluster) -> str:
    name = f"ha-{uuid.uuid4().hex[:8]}"
    envtest_controller_manager.create_namespace(name)
    return name


@pytest.fixture
def operators(
    envtest_controller_manager: EnvtestCluster, namespace: str, tmp_path: Path
) -> Iterator[list[Operator]]:
    started: list[Operator] = []
    yield started
    for operator in started:
        operator.stop()


def _lease(cluster: Cluster) -> dict[str, Any]:
    lease = cluster.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{cluster.ns}/leases/bespoke-operator"
    )
    return (lease or {}).get("spec") or {}


def test_the_standby_takes_over_a_killed_leader_without_duplicates(
    envtest_controller_manager: EnvtestCluster,
    namespace: str,
    operators: list[Operator],
    tmp_path: Path,
) -> None:
    cluster = Cluster(envtest_controller_manager, namespace)
    first = Operator(envtest_controller_manager, namespace, "operator-a", tmp_path)
    operators.append(first)
    lease = wait_for(lambda: _lease(cluster), lambda s: s.get("holderIdentity") == "operator-a")
    assert lease.get("holderIdentity") == "operator-a", first.text()
    second = Operator(envtest_controller_manager, namespace, "operator-b", tmp_path)
    operators.append(second)
    standing_by = wait_for(second.text, lambda text: "Standing by for Lease" in text)
    assert "Standing by for Lease" in standing_by, standing_by

    # The leader creates v1 and its trainer Job; the standby writes nothing.
    cluster.create_example()
    jobs = wait_for(cluster.jobs, bool)
    assert [j["metadata"]["name"] for j in jobs] == ["sentiment-v1-train-1"], first.text()
    assert "Leading" not in second.text()
    assert _lease(cluster)["holderIdentity"] == "operator-a"

    # The leader dies without a word; the trainer finishes while nobody leads.
    first.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.process.wait(timeout=30)
    cluster.finish_trainer("sentiment-v1-train-1", _summary(1, 0.93))

    # The standby acquires the Lease once it has seen no renewal for its duration, starts
    # watching, finds the finished Job and carries on: the serving Deployment is its first write.
    taken = wait_for(
        lambda: _lease(cluster),
        lambda s: s.get("holderIdentity") == "operator-b",
        timeout_s=FAILOVER_BOUND_S,
    )
    lease_taken_s = time.monotonic() - killed_at
    assert taken.get("holderIdentity") == "operator-b", second.text()
    deployment = wait_for(
        cluster.deployment, lambda d: d is not None, timeout_s=FAILOVER_BOUND_S - lease_taken_s
    )
    first_write_s = time.monotonic() - killed_at
    assert deployment is not None, (
        f"operator-b did not take over within {FAILOVER_BOUND_S}s of the kill:\n{second.text()}"
    )
    print(f"failover: Lease taken {lease_taken_s:.1f}s, Deployment {first_write_s:.1f}s after")
    assert taken["leaseTransitions"] == 1

    # One version, one Job, one Deployment: nothing done twice.
    promoted = wait_for(
        lambda: cluster.mv(1), lambda v: (v or {}).get("status", {}).get("phase") == "Promoted"
    )
    assert (promoted or {}).get("status", {}).get("phase") == "Promoted", second.text()
    versions = cluster.items(f"/apis/bespoke.dev/v1alpha1/namespaces/{namespace}/modelversions", "")
    assert [v["metadata"]["name"] for v in versions] == ["sentiment-v1"]
    assert [j["metadata"]["name"] for j in cluster.jobs()] == ["sentiment-v1-train-1"]
    deployments = cluster.items(f"/apis/apps/v1/namespaces/{namespace}/deployments", "")
    assert [d["metadata"]["name"] for d in deployments] == ["sentiment-serving"]
    assert second.process.poll() is None, second.text()


def test_a_leader_stopped_cleanly_hands_the_lease_over_at_once(
    envtest_controller_manager: EnvtestCluster,
    namespace: str,
    operators: list[Operator],
    tmp_path: Path,
) -> None:
    cluster = Cluster(envtest_controller_manager, namespace)
    first = Operator(envtest_controller_manager, namespace, "operator-a", tmp_path)
    operators.append(first)
    lease = wait_for(lambda: _lease(cluster), lambda s: s.get("holderIdentity") == "operator-a")
    assert lease.get("holderIdentity") == "operator-a", first.text()
    second = Operator(envtest_controller_manager, namespace, "operator-b", tmp_path)
    operators.append(second)
    wait_for(second.text, lambda text: "Standing by for Lease" in text)

    # SIGTERM, as a rolling update sends it: the leader releases the Lease as it exits.
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=60) == 0, first.text()
    released = _lease(cluster)
    assert released.get("holderIdentity") in ("", "operator-b"), first.text()
    # The standby need not wait out the lease duration: it takes a released Lease on sight.
    taken = wait_for(
        lambda: _lease(cluster),
        lambda s: s.get("holderIdentity") == "operator-b",
        timeout_s=2 * LEASE_DURATION_S,
    )
    assert taken.get("holderIdentity") == "operator-b", second.text()
