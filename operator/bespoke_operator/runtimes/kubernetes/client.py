"""A small JSON client for the Kubernetes API calls Bespoke makes, over kubernetes_asyncio."""

from __future__ import annotations

import json
from typing import Any, Final

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["ApiError", "KubeApi", "resource_path"]

FIELD_MANAGER: Final = "bespoke-operator"


class ApiError(Exception):
    """An API call failed; `status` is the HTTP status (409 conflict, 403 forbidden, ...)."""

    def __init__(self, status: int, reason: str, path: str) -> None:
        super().__init__(f"{status} {reason} on {path}")
        self.status = status
        self.reason = reason
        self.path = path

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling and server errors heal on their own; the rest need a person."""
        return self.status in (409, 429) or self.status >= 500


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or an object (`/api/v1/...` or `/apis/group/v/...`)."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeApi:
    """JSON in, JSON out; a 404 on read and a 409 on create are answers, not errors."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> KubeApi:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        configuration = Configuration()
        try:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except kube_config.ConfigException:
            await kube_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        return cls(ApiClient(configuration))

    async def close(self) -> None:
        """Releases the HTTP session."""
        await self._client.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        try:
            response = await self._client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
            try:
                raw = await response.read()
            finally:
                response.release()
        except ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason), path) from exc
        if not 200 <= response.status <= 299:  # unchecked by the library without preloading
            raise ApiError(response.status, _message(raw, str(response.reason)), path)
        return json.loads(raw) if raw else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str) -> list[dict[str, Any]]:
        """The objects of a collection matching a label selector."""
        result = await self._call("GET", path, query=[("labelSelector", label_selector)])
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates an object; None when it already exists (creating twice is success)."""
        try:
            return await self._call("POST", path, body=body)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the server changes nothing when the object already matches."""
        return await self._call(
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (lists are replaced whole)."""
        merge = "application/merge-patch+json"
        return await self._call("PATCH", path, body=patch, content_type=merge)

    async def delete(self, path: str) -> None:
        """Deletes with background propagation; deleting what is gone is success."""
        try:
            await self._call(
                "DELETE", path, body={"kind": "DeleteOptions", "propagationPolicy": "Background"}
            )
        except ApiError as exc:
            if exc.status != 404:
                raise


def _message(raw: bytes, fallback: str) -> str:
    """The API server's Status message (it names the field and the rule), else the HTTP reason."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return fallback
    return str(body.get("message") or fallback) if isinstance(body, dict) else fallback
