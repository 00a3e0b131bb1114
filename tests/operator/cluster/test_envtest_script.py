"""hack/envtest.sh: which cached binaries it trusts, and that a warm run does nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.operator.cluster.envtest_cluster import (
    K8S_VERSION,
    REPO_ROOT,
    binary_dir,
    require_binaries,
)

SCRIPT = REPO_ROOT / "hack" / "envtest.sh"


def fake_binary(path: Path, version_output: str) -> Path:
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{version_output}'\n")
    path.chmod(0o755)
    return path


def usable(path: Path) -> bool:
    result = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}" && usable "{path}"'],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


@pytest.mark.parametrize(
    ("name", "output", "expected"),
    [
        ("kube-apiserver", f"Kubernetes v{K8S_VERSION}", True),
        ("kube-apiserver", "Kubernetes v0.0.0-master+$Format:%H$", False),
        ("kube-controller-manager", "Kubernetes v1.33.0", False),
        ("etcd", "etcd Version: 3.6.4\nGit SHA: GitNotFound", True),
        ("etcd", "etcd Version: 3.4.23", False),
        ("kubectl", f"Client Version: v{K8S_VERSION}", True),
    ],
)
def test_cached_binary_counts_only_at_the_pinned_version(
    tmp_path: Path, name: str, output: str, expected: bool
) -> None:
    assert usable(fake_binary(tmp_path / name, output)) is expected


def test_a_file_that_does_not_run_is_not_usable(tmp_path: Path) -> None:
    broken = tmp_path / "kube-apiserver"
    broken.write_bytes(b"\x7fELF truncated")
    broken.chmod(0o755)
    assert not usable(broken)
    assert not usable(tmp_path / "etcd")


@pytest.mark.cluster
def test_warm_run_only_checks_the_cache() -> None:
    require_binaries(controller_manager=True)
    env = {**os.environ, "BESPOKE_ENVTEST_NO_DOWNLOAD": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, check=False, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Cached binaries are usable; nothing to do" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(binary_dir())
