"""A Secret's value stays with the pods that reference it, on the real API server.

A Secret holds a unique sentinel; the customization names it as the trainer's storage Secret.
After a whole pass (version, trainer Job, promotion, serving Deployment, Ready), everything the
operator wrote or could have copied the value into is read back from the server, with the
operator's own log (kopf at its most verbose), and must not hold the sentinel, raw or base64.
The serving pods do not even reference the trainer's Secret.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.operator.cluster.envtest_cluster import EnvtestCluster, wait_for
from tests.operator.cluster.test_operator import GROUP_PATH, Cluster, _condition, _summary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SECRET = "store-keys"


@pytest.fixture
def cluster(
    envtest: EnvtestCluster,
    envtest_controller_manager: EnvtestCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> Cluster:
    monkeypatch.setenv("KUBECONFIG", str(envtest_controller_manager.kubeconfig))
    monkeypatch.setenv("BESPOKE_METRICS_PORT", "0")
    monkeypatch.setenv("BESPOKE_RECONCILE_INTERVAL_SECONDS", "3")
    namespace = f"sec-{uuid.uuid4().hex[:8]}"
    envtest_controller_manager.create_namespace(namespace)
    return Cluster(envtest_controller_manager, namespace)


def _everything(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """Every object of the kinds the operator writes or that carry its output, in the namespace."""
    ns = cluster.ns
    paths = {
        "customizations": f"{GROUP_PATH}/namespaces/{ns}/modelcustomizations",
        "versions": f"{GROUP_PATH}/namespaces/{ns}/modelversions",
        "events": f"/api/v1/namespaces/{ns}/events",
        "events.k8s.io": f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
        "configmaps": f"/api/v1/namespaces/{ns}/configmaps",
        "jobs": f"/apis/batch/v1/namespaces/{ns}/jobs",
        "pods": f"/api/v1/namespaces/{ns}/pods",
        "deployments": f"/apis/apps/v1/namespaces/{ns}/deployments",
        "replicasets": f"/apis/apps/v1/namespaces/{ns}/replicasets",
        "services": f"/api/v1/namespaces/{ns}/services",
        "poddisruptionbudgets": f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    }
    return {kind: cluster.items(path, "") for kind, path in paths.items()}


def test_a_secret_value_reaches_no_status_event_configmap_log_or_message(
    cluster: Cluster,
) -> None:
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    encoded = base64.b64encode(sentinel.encode()).decode()
    answer = cluster.envtest.request(
        "POST",
        f"/api/v1/namespaces/{cluster.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {"AWS_SECRET_ACCESS_KEY": sentinel, "HF_TOKEN": sentinel},
        },
    )
    assert answer.status == 201, answer.message
    cluster.create_example(replicas=2)
    cluster.patch_spec({"storage": {"secretRef": {"name": SECRET}}})

    args = ["run", "--standalone", "--verbose", "--namespace", cluster.ns]
    with KopfRunner([*args, "-m", "bespoke_operator.handlers"], timeout=60) as runner:
        jobs = wait_for(cluster.jobs, lambda js: any("-v" in j["metadata"]["name"] for j in js))
        assert jobs, "the operator created no trainer Job"
        job = jobs[-1]
        cluster.finish_trainer(job["metadata"]["name"], _summary(1, 0.93))
        deployment = wait_for(cluster.deployment, lambda d: d is not None)
        assert deployment is not None
        version = deployment["spec"]["template"]["metadata"]["labels"]["bespoke.dev/version"]
        cluster.serving_pods_ready(int(version))
        ready = wait_for(cluster.mc, lambda b: _condition(b, "Ready") == "True", timeout_s=90)
        assert _condition(ready, "Ready") == "True", ready
        everything = _everything(cluster)
    assert runner.exception is None

    # The trainer references the Secret by name; the serving pods do not reference it at all.
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": SECRET}} in trainer.get("envFrom", [])
    serving = deployment["spec"]["template"]["spec"]
    assert SECRET not in json.dumps(serving)
    assert not serving["containers"][0].get("envFrom")

    # The check sees the value where it is (the Secret's own data, base64)...
    secret = cluster.get(f"/api/v1/namespaces/{cluster.ns}/secrets/{SECRET}")
    assert encoded in json.dumps(secret)
    # ... and nothing else holds it: statuses, events, ConfigMaps, pod termination messages, ...
    assert all(everything[kind] for kind in ("versions", "events", "configmaps")), everything
    for kind, items in everything.items():
        text = json.dumps(items)
        assert sentinel not in text, f"{kind} hold the Secret's value"
        assert encoded not in text, f"{kind} hold the Secret's value (base64)"
    # ... nor the operator's log.
    assert runner.output, "kopf logged nothing: the log check would prove nothing"
    assert sentinel not in runner.output
    assert encoded not in runner.output
