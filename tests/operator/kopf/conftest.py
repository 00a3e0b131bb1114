"""Fixtures for the operator's handler and fault tests: a kmock Kubernetes emulator with faults.

kmock's emulator keeps objects in memory and serves them over real HTTP, so the operator's own
API client (kubernetes_asyncio) talks to it unchanged. What a real API server will not do on
demand (answer 500 or 429) is injected here, *before* the emulator stores anything, as a server
that fails a request does. The emulator assigns no uid or resourceVersion; this one does on
create, as the real server does (owner references carry uids; kopf tests resourceVersion).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import pytest_asyncio
import yaml
from kubernetes_asyncio.client import Configuration

from bespoke_operator.runtimes.kubernetes.client import KubeApi

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "text-classification-lora.yaml"
NAMESPACE = "ns1"
NAME = "sentiment"
RESOURCES = {
    "bespoke.dev/v1alpha1/modelcustomizations": "ModelCustomization",
    "bespoke.dev/v1alpha1/modelversions": "ModelVersion",
    "batch/v1/jobs": "Job",
    "v1/pods": "Pod",
    "v1/configmaps": "ConfigMap",
    "v1/events": "Event",
    "v1/services": "Service",
    "apps/v1/deployments": "Deployment",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
}
# Cluster-scoped: kopf lists namespaces to start its per-namespace watches, and watches CRDs.
CLUSTER_RESOURCES = {
    "v1/namespaces": "Namespace",
    "apiextensions.k8s.io/v1/customresourcedefinitions": "CustomResourceDefinition",
}
_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


@dataclass
class Fault:
    """Answer the next `times` requests with `method` on a path ending in `suffix` with `status`."""

    method: str
    suffix: str
    status: int
    times: int = 1
    hits: list[str] = field(default_factory=list)
    #: The `Retry-After` header of the answer, if any.
    retry_after: str | None = None


@attrs.define(kw_only=True)
class FaultyKubernetes(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator that fails chosen requests before storing anything."""

    faults: list[Fault] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        method = str(request.method.value if request.method else "").upper()
        for fault in self.faults:
            if fault.times and method == fault.method and request.url.path.endswith(fault.suffix):
                fault.times -= 1
                fault.hits.append(request.url.path)
                return aiohttp.web.json_response(
                    {
                        "apiVersion": "v1",
                        "kind": "Status",
                        "status": "Failure",
                        "code": fault.status,
                        "message": f"injected {fault.status}",
                    },
                    status=fault.status,
                    headers={"Retry-After": fault.retry_after} if fault.retry_after else None,
                )
        if method == "POST" and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("generation", 1)
            # kopf guards its JSON patches with a test on resourceVersion; the emulator never
            # bumps it, so the guard always holds here (conflicts are the real server's job).
            metadata.setdefault("resourceVersion", "1")
        return await super()._handle(request)

    def stored(self, plural: str) -> list[dict[str, Any]]:
        """The live objects of a resource (by plural name), as the emulator holds them."""
        return [
            dict(obj.raw)
            for (resource, _, _), obj in self.objects.items()
            if resource.plural == plural and not obj.deleted
        ]


@pytest_asyncio.fixture
async def kube() -> AsyncIterator[FaultyKubernetes]:
    """A running emulator that knows Bespoke's resources and the children it creates."""
    async with FaultyKubernetes() as handler, kmock.Server(handler):
        for resource, kind in RESOURCES.items():
            handler.resources[resource] = kmock.ResourceInfo(
                namespaced=True, kind=kind, verbs=_VERBS, subresources={"status"}
            )
        for resource, kind in CLUSTER_RESOURCES.items():
            handler.resources[resource] = kmock.ResourceInfo(
                namespaced=False, kind=kind, verbs=_VERBS
            )
        handler.objects["v1/namespaces", None, NAMESPACE] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "uid": str(uuid.uuid4()), "resourceVersion": "1"},
        }
        yield handler


@pytest_asyncio.fixture
async def api(kube: FaultyKubernetes) -> AsyncIterator[KubeApi]:
    """The operator's own JSON client, pointed at the emulator."""
    client = KubeApi(Configuration(host=str(kube.url).rstrip("/")))
    yield client
    await client.close()


def customization(**spec_changes: Any) -> dict[str, Any]:
    """The example customization as the API server would return it (uid, generation set)."""
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    document["metadata"].update({"namespace": NAMESPACE, "uid": str(uuid.uuid4()), "generation": 1})
    document["spec"].update(spec_changes)
    return document
