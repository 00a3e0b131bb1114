"""The operator starts in the chart's identity: uid 65532, which has no passwd entry.

The chart runs the operator as uid 65532 with only the environment it renders. kopf computes its
identity before anything else runs and, without `POD_ID`, asks the passwd database for the user
name (`getpass.getuser()`), which raises `KeyError: 'getpwuid(): uid not found: 65532'` and ends
the pod at start. This test starts the operator's real entry point (the chart's command and
arguments) with exactly the rendered environment, as uid 65532 in a user namespace (so the passwd
lookup fails as it does in the pod), and waits for the liveness endpoint, which kopf (or, while
the pod is a leader-election standby, the operator's startup handler) serves only after kopf has
set its identity.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chartlib import REPO_ROOT, Manifest, Render, one
from tests.chart.promserver import free_port

POD_NAME = "rel-bespoke-operator-7d9c8b6f5-x2x7q"
NAMESPACE = "bespoke-system"
UID = 65532  # the chart's runAsUser
SOURCES = ("operator", "trainer", "serving", "monitor")


def _operator_container(render: Render) -> Manifest:
    deployment = one(render(namespace=NAMESPACE), "Deployment", "-operator")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == UID
    container: Manifest = next(c for c in pod["containers"] if c["name"] == "operator")
    return container


def _resolve_env(env: list[Manifest]) -> dict[str, str]:
    """The values the kubelet gives the container: literals and the downward API's fields."""
    fields = {"metadata.name": POD_NAME, "metadata.namespace": NAMESPACE}
    resolved: dict[str, str] = {}
    for var in env:
        if "value" in var:
            resolved[var["name"]] = str(var["value"])
            continue
        field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        assert field in fields, f"env {var['name']}: no resolver for {var.get('valueFrom')}"
        resolved[var["name"]] = fields[field]
    return resolved


def test_the_operator_gets_its_kopf_identity_from_the_pod_name(render: Render) -> None:
    env = _operator_container(render)["env"]
    pod_id = [var for var in env if var["name"] == "POD_ID"]
    assert pod_id == [{"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """Stands in for the pod's ServiceAccount: a server nobody listens on (start needs none)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: none}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    )
    path.chmod(0o644)
    return path


@pytest.fixture
def started(render: Render, unreachable_kubeconfig: Path) -> Iterator[tuple[Any, int]]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare is needed to run as uid 65532: apt-get install util-linux")
    container = _operator_container(render)
    env = _resolve_env(container["env"])
    # Only the ports move (so the test can run beside anything); the rest is the rendered env,
    # plus what the image and the kubelet provide (PATH, HOME=/ for an unknown uid).
    metrics, liveness = free_port(), free_port()
    env["BESPOKE_METRICS_PORT"] = str(metrics)
    # A standby (leader election is on by default) answers on the same port as kopf's probe.
    env["BESPOKE_HEALTH_PORT"] = str(liveness)
    env |= {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/",
        "HOSTNAME": POD_NAME,
        "PYTHONPATH": ":".join(str(REPO_ROOT / s) for s in SOURCES),
        "KUBECONFIG": str(unreachable_kubeconfig),
    }
    args = [
        f"--liveness=http://127.0.0.1:{liveness}/healthz" if a.startswith("--liveness=") else a
        for a in container["args"]
    ]
    kopf = str(Path(sys.executable).parent / container["command"][0])
    identity = [unshare, "--user", f"--map-user={UID}", f"--map-group={UID}", "--"]
    process = subprocess.Popen(
        [*identity, kopf, *args],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, liveness
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_the_operator_starts_as_uid_65532_with_the_chart_env(started: tuple[Any, int]) -> None:
    process, port = started
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + 90  # a bound on the wait, not a claim about speed
    status = None
    while status is None and process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                status = answer.status
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    if status is None:
        process.terminate()
        output = process.communicate(timeout=30)[0]
        pytest.fail(f"the operator never served {url} (exit {process.returncode}):\n{output}")
    assert status == 200
    assert process.poll() is None, "the operator exited after answering its liveness probe"
