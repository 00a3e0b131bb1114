"""`bespoke get`, `bespoke versions --cluster`, `bespoke approve`: the cluster through a kubeconfig.

Reads and the one write (the approval annotation) go through the operator's own JSON client
(`runtimes.kubernetes.client.KubeApi`), with the kubeconfig's credentials: what the person may do
is what their RBAC allows (the chart's aggregated `edit` role grants `patch` on modelversions).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes_asyncio.config import ConfigException, list_kube_config_contexts

from bespoke_operator.api import ModelCustomization, ModelVersion
from bespoke_operator.constants import (
    API_VERSION,
    APPROVAL_ANNOTATION,
    CUSTOMIZATION_LABEL,
    CUSTOMIZATIONS,
    VERSIONS,
)
from bespoke_operator.errors import ApiError
from bespoke_operator.reconcile import version_name
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from bespoke_operator.runtimes.kubernetes.read import parse_versions, without_server_fields

__all__ = ["ClusterError", "Target", "approve", "customizations", "versions"]

_T = TypeVar("_T")


class ClusterError(Exception):
    """What went wrong talking to the cluster, in a sentence that says what to do."""


@dataclass(frozen=True)
class Target:
    """Which cluster and namespace: a kubeconfig (None: $KUBECONFIG or ~/.kube/config) and a
    namespace (None: the kubeconfig context's, else `default`)."""

    kubeconfig: Path | None = None
    namespace: str | None = None

    def resolved_namespace(self) -> str:
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ClusterError(f"--kubeconfig {self.kubeconfig} does not exist")
        if self.namespace:
            return self.namespace
        try:
            _, active = list_kube_config_contexts(str(self.kubeconfig) if self.kubeconfig else None)
        except ConfigException as exc:
            raise ClusterError(f"No usable kubeconfig: {exc} (pass --kubeconfig)") from exc
        context = (active or {}).get("context") or {}
        return str(context.get("namespace") or "default")


async def _with_api(target: Target, call: Callable[[KubeApi, str], Awaitable[_T]]) -> _T:
    namespace = target.resolved_namespace()
    try:
        api = await KubeApi.connect(str(target.kubeconfig) if target.kubeconfig else None)
    except ConfigException as exc:
        raise ClusterError(f"No usable kubeconfig: {exc} (pass --kubeconfig)") from exc
    try:
        return await call(api, namespace)
    except ApiError as exc:
        raise ClusterError(f"The API server refused: {exc}") from exc
    except OSError as exc:  # aiohttp's connection errors are OSErrors
        raise ClusterError(f"Cannot reach the API server: {exc}") from exc
    finally:
        await api.close()


def _readable(item: dict[str, Any]) -> dict[str, Any]:
    """The object without server bookkeeping (managedFields), as `kubectl get -o yaml` shows."""
    body = without_server_fields(item)
    body["metadata"] = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return body


def _customization(item: dict[str, Any]) -> ModelCustomization:
    return ModelCustomization.model_validate(_readable(item))


async def customizations(target: Target, name: str | None) -> list[ModelCustomization]:
    """The namespace's customizations (or the one named); ClusterError if the named is absent."""

    async def call(api: KubeApi, namespace: str) -> list[ModelCustomization]:
        if name is None:
            items = await api.list(resource_path(API_VERSION, CUSTOMIZATIONS, namespace), "")
            return sorted((_customization(i) for i in items), key=lambda mc: mc.metadata.name)
        item = await api.get(resource_path(API_VERSION, CUSTOMIZATIONS, namespace, name))
        if item is None:
            raise ClusterError(f"No ModelCustomization {name} in namespace {namespace}")
        return [_customization(item)]

    return await _with_api(target, call)


async def versions(target: Target, name: str) -> list[ModelVersion]:
    """The versions of customization `name`, by number."""

    async def call(api: KubeApi, namespace: str) -> list[ModelVersion]:
        path = resource_path(API_VERSION, VERSIONS, namespace)
        items = await api.list(path, f"{CUSTOMIZATION_LABEL}={name}")
        found = parse_versions(_readable(item) for item in items)
        return sorted(found, key=lambda v: v.spec.version)

    return await _with_api(target, call)


async def approve(target: Target, name: str, number: int) -> ModelVersion:
    """Annotates version `number` of `name` approved; returns it as it was before.

    Refuses a version that failed its gates or is gone: an approval never overrides the gates
    (spec.serving.pinnedVersion does, on purpose).
    """

    async def call(api: KubeApi, namespace: str) -> ModelVersion:
        path = resource_path(API_VERSION, VERSIONS, namespace, version_name(name, number))
        item = await api.get(path)
        if item is None:
            raise ClusterError(
                f"{name} has no version {number} in namespace {namespace} "
                f"(`bespoke versions {name} --cluster` lists them)"
            )
        [version] = parse_versions([item])
        phase = version.status.phase if version.status else None
        if phase in ("Rejected", "Failed"):
            reason = version.status.reason if version.status else None
            raise ClusterError(
                f"v{number} is {phase} ({reason}): an approval does not override its gates; "
                f"to serve it anyway set spec.serving.pinnedVersion: {number} (break-glass)"
            )
        await api.merge_patch(path, {"metadata": {"annotations": {APPROVAL_ANNOTATION: "true"}}})
        return version

    return await _with_api(target, call)
