"""The whole operator (kopf's machinery and Bespoke's handlers) against kmock's emulator.

Proves the retry end to end: after a 500 and then a 429 on the Job create, the operator's resync
queue runs the pass again (after a backoff of up to 2 s, then up to 4 s), and the customization
ends with exactly one Job and a healthy status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import kopf
import pytest
import yaml

from bespoke_operator.api import API_VERSION
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from tests.operator.kopf.conftest import NAMESPACE, Fault, FaultyKubernetes, customization

# Two back-offs come before the retry that succeeds.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "kmock", "user": {"token": "kmock"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


async def _until(condition: Callable[[], bool], timeout_s: float = 30) -> bool:
    for _ in range(int(timeout_s * 10)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def test_server_errors_are_retried_until_the_job_exists(
    kube: FaultyKubernetes, api: KubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", str(kube.url))))
    monkeypatch.setenv("BESPOKE_METRICS_PORT", "0")
    from bespoke_operator import handlers  # registers the handlers with kopf's default registry

    assert handlers.__name__
    faults = [Fault("POST", "/jobs", 500), Fault("POST", "/jobs", 429)]
    kube.faults.extend(faults)
    await api.create(resource_path(API_VERSION, "modelcustomizations", NAMESPACE), customization())

    # kmock 0.8 cannot parse GET /api/v1/namespaces (it answers 500), so kopf is told not to
    # scan the cluster and to take the namespace it was given as existing.
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(standalone=True, namespaces=[NAMESPACE], stop_flag=stop, settings=settings)
    )
    try:
        created = await _until(lambda: bool(kube.stored("jobs")))
        healthy = await _until(
            lambda: any(
                c["type"] == "Reconciling" and c["status"] == "True"
                for c in (kube.stored("modelcustomizations")[0].get("status") or {}).get(
                    "conditions", []
                )
            )
        )
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, timeout=30)

    assert created
    assert healthy
    assert [len(f.hits) for f in faults] == [1, 1]
    assert [j["metadata"]["name"] for j in kube.stored("jobs")] == ["sentiment-v1-train-1"]
    assert [v["metadata"]["name"] for v in kube.stored("modelversions")] == ["sentiment-v1"]
