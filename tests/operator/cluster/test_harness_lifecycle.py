"""The harness itself: it skips with a reason when binaries are missing and leaves no process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.operator.cluster.envtest_cluster import (
    REPO_ROOT,
    BinariesMissingError,
    EnvtestCluster,
    find_binaries,
    wait_for,
)


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
    envtest_control_plane: EnvtestCluster, monkeypatch: pytest.MonkeyPatch
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
def test_a_process_that_dies_at_start_is_reported_with_its_log(
    envtest_control_plane: EnvtestCluster,
) -> None:
    cluster = EnvtestCluster(extra_apiserver_args=["--no-such-flag"])
    with pytest.raises(Exception, match=r"kube-apiserver exited with 1:(.|\n)*no-such-flag"):
        cluster.start()
    assert cluster.pids == []


@pytest.mark.cluster
def test_session_cluster_serves_the_pinned_version(envtest_control_plane: EnvtestCluster) -> None:
    version = envtest_control_plane.request("GET", "/version").body
    assert version["gitVersion"].startswith(
        f"v{os.environ.get('BESPOKE_ENVTEST_K8S_VERSION', '1.34.4')}"
    )
    assert envtest_control_plane.kubeconfig.is_file()
    assert envtest_control_plane.server.startswith("https://127.0.0.1:")


@pytest.mark.cluster
def test_killing_the_test_runner_takes_the_control_plane_with_it(
    envtest_control_plane: EnvtestCluster,
) -> None:
    # SIGKILL runs no finalizer and no atexit: only PR_SET_PDEATHSIG can clean up after it.
    runner = textwrap.dedent(
        """
        import time
        from tests.operator.cluster.envtest_cluster import EnvtestCluster
        cluster = EnvtestCluster()
        cluster.start()
        print(cluster.work_dir, *cluster.pids, flush=True)
        time.sleep(300)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", runner], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            work_dir, *pids = process.stdout.readline().split()
        finally:
            process.kill()
    shutil.rmtree(work_dir, ignore_errors=True)
    assert len(pids) == 2
    alive = wait_for(lambda: [pid for pid in map(int, pids) if _alive(pid)], lambda left: not left)
    assert alive == []
