"""The harness itself: it skips with a reason when binaries are missing and leaves no process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster.envtest_cluster import BinariesMissingError, EnvtestCluster, find_binaries


def _alive(pid: int) -> bool:
    # A zombie still has a /proc entry; only a process that is gone or reaped counts as stopped.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_missing_binaries_name_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESPOKE_ENVTEST_BIN_DIR", str(tmp_path))
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    with pytest.raises(
        BinariesMissingError, match=r"kube-apiserver not found in .*hack/envtest\.sh"
    ):
        find_binaries(controller_manager=False)
    with pytest.raises(
        BinariesMissingError, match="kube-apiserver, kube-controller-manager not found"
    ):
        find_binaries(controller_manager=True)


@pytest.mark.cluster
def test_stop_leaves_no_process_even_when_the_test_fails(
    envtest: EnvtestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BESPOKE_ENVTEST_KEEP", raising=False)
    # A second, private control plane: the session one must stay up for the other tests.
    cluster = EnvtestCluster(controller_manager=True)
    pids: list[int] = []
    work_dir: Path | None = None

    def failing_test() -> None:
        nonlocal pids, work_dir
        with cluster:
            pids = cluster.pids
            work_dir = cluster.work_dir
            assert cluster.request("GET", "/readyz").status == 200
            raise RuntimeError("test failure")

    with pytest.raises(RuntimeError, match="test failure"):
        failing_test()
    assert len(pids) == 3
    assert not [pid for pid in pids if _alive(pid)]
    assert work_dir is not None
    assert not work_dir.exists()
    cluster.stop()  # A second stop is harmless.


@pytest.mark.cluster
def test_a_process_that_dies_at_start_is_reported_with_its_log(envtest: EnvtestCluster) -> None:
    cluster = EnvtestCluster(extra_apiserver_args=["--no-such-flag"])
    with pytest.raises(Exception, match=r"kube-apiserver exited with 1:(.|\n)*no-such-flag"):
        cluster.start()
    assert cluster.pids == []


@pytest.mark.cluster
def test_session_cluster_serves_the_pinned_version(envtest: EnvtestCluster) -> None:
    version = envtest.request("GET", "/version").body
    assert version["gitVersion"].startswith(
        f"v{os.environ.get('BESPOKE_ENVTEST_K8S_VERSION', '1.34.4')}"
    )
    assert envtest.kubeconfig.is_file()
    assert envtest.server.startswith("https://127.0.0.1:")
