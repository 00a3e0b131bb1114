"""A small JSON client for the Kubernetes API calls Bespoke makes, over one aiohttp session.

Credentials come from kubernetes_asyncio's configuration loaders (in-cluster ServiceAccount or a
kubeconfig, with their token refresh); requests go straight through aiohttp. The generated client
added a model-serialisation pass and an environment-proxy lookup in a thread to every call,
which at a thousand customizations was a fifth of the operator's CPU.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import ssl
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration

from bespoke_operator.errors import ApiError

__all__ = ["KubeApi", "resource_path", "retry_after"]

FIELD_MANAGER: Final = "bespoke-operator"
# No single call should hang a reconcile forever; lists of a few thousand objects fit well inside.
_REQUEST_TIMEOUT: Final = aiohttp.ClientTimeout(total=60)
_PROXY_VARIABLES: Final = ("https_proxy", "http_proxy", "all_proxy")


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

    def __init__(self, configuration: Configuration) -> None:
        self._configuration = configuration
        self._base = str(configuration.host).rstrip("/")
        self._session: aiohttp.ClientSession | None = None

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
        return cls(configuration)

    async def close(self) -> None:
        """Releases the HTTP session."""
        if self._session is not None:
            await self._session.close()
            # aiohttp finishes closing TLS transports on later loop iterations (its graceful
            # shutdown advice): an operator stopping right after would leave their sockets open.
            await asyncio.sleep(0.25)

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=_ssl_context(self._configuration)),
                timeout=_REQUEST_TIMEOUT,
                # Proxy variables are honoured when set; the lookup costs a thread hop per call.
                trust_env=any(
                    os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES
                ),
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        read_body: bool = True,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # Re-read per call: the in-cluster loader refreshes the projected token through this hook.
        token = await self._configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        async with self._http().request(
            method,
            self._base + path,
            params=query or None,
            data=None if body is None else json.dumps(body),
            headers=headers,
            proxy=self._configuration.proxy or None,
            server_hostname=self._configuration.tls_server_name or None,
        ) as response:
            raw = await response.read()
            if not 200 <= response.status <= 299:
                raise ApiError(
                    response.status,
                    _message(raw, str(response.reason)),
                    path,
                    retry_after=retry_after(response.headers.get("Retry-After")),
                )
        # Parsing a write's echo of the whole object costs more than the write itself; most
        # writes need nothing back.
        return json.loads(raw) if raw and read_body else {}

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

    async def create(self, path: str, body: dict[str, Any]) -> bool:
        """Creates an object; False when it already exists (creating twice is success)."""
        try:
            await self._call("POST", path, body=body, read_body=False)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def replace(self, path: str, body: dict[str, Any]) -> bool:
        """Replaces an object at the `metadata.resourceVersion` it carries; False on a conflict
        (somebody wrote it since it was read)."""
        try:
            await self._call("PUT", path, body=body, read_body=False)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def apply(self, path: str, body: dict[str, Any]) -> None:
        """Server-side apply: the server changes nothing when the object already matches."""
        await self._call(
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
            read_body=False,
        )

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch (lists are replaced whole)."""
        merge = "application/merge-patch+json"
        await self._call("PATCH", path, body=patch, content_type=merge, read_body=False)

    async def delete(self, path: str) -> None:
        """Deletes with background propagation; deleting what is gone is success."""
        try:
            await self._call(
                "DELETE",
                path,
                body={"kind": "DeleteOptions", "propagationPolicy": "Background"},
                read_body=False,
            )
        except ApiError as exc:
            if exc.status != 404:
                raise


def retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), if valid."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """The server CA, the client certificate if any, and verification as the kubeconfig says."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _message(raw: bytes, fallback: str) -> str:
    """The API server's Status message (it names the field and the rule), else the HTTP reason."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return fallback
    return str(body.get("message") or fallback) if isinstance(body, dict) else fallback
