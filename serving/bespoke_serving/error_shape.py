"""Every error response in one JSON shape: `{"error": ..., "field": ..., "limit": ...}`.

`RequestGuard` answers in this shape itself; the answers that come from elsewhere do not: the
router's 404 and 405 are plain text, BentoML's validation errors are `{"error", "detail"}`, and
an exception raised in an API method becomes a list `[{"error": ...}]`. This ASGI middleware
rewrites any response with status 400 or above into the one shape, keeping its status and its
headers (`Allow` on a 405), and gives every 503 a `Retry-After`. Successful responses pass
through untouched and unbuffered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

__all__ = ["ErrorShape", "error_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SHAPE = {"error", "field", "limit"}
#: The routes a client may call, for the 404 message.
ROUTES = "POST /classify, POST /generate, GET /drift, GET /healthz, GET /readyz, GET /metrics"
_REPLACED = {b"content-type", b"content-length"}


def error_body(
    status: int, body: bytes, scope: Scope, headers: dict[bytes, bytes]
) -> dict[str, Any]:
    """The one-shape body for an error response `body` with `status`."""
    method, path = scope.get("method", "GET"), scope.get("path", "")
    try:
        payload: Any = json.loads(body) if body else None
    except (UnicodeDecodeError, ValueError):
        payload = None
    if isinstance(payload, dict) and set(payload) == _SHAPE:
        return payload
    if status == HTTPStatus.NOT_FOUND:
        return _shape(f"there is no {path} — the service answers {ROUTES}")
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = headers.get(b"allow", b"").decode("latin-1") or "another method"
        return _shape(f"{method} is not allowed on {path} — use {allowed}")
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return _from_detail(payload) or _shape(payload["error"])
    text = body.decode("utf-8", "replace").strip()
    return _shape(text or HTTPStatus(status).phrase)


def _shape(error: str, field: str | None = None) -> dict[str, Any]:
    return {"error": error, "field": field, "limit": None}


def _from_detail(payload: dict[str, Any]) -> dict[str, Any] | None:
    """BentoML's pydantic error list, first entry: `{"loc": [...], "msg": ...}`."""
    detail = payload.get("detail")
    if not isinstance(detail, list) or not detail or not isinstance(detail[0], dict):
        return None
    first = detail[0]
    field = ".".join(str(part) for part in first.get("loc") or []) or None
    message = str(first.get("msg", payload["error"]))
    return _shape(f"{field}: {message}" if field else message, field)


class ErrorShape:
    """ASGI middleware putting every error response into the one JSON shape."""

    def __init__(self, app: ASGIApp, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.retry_after = str(retry_after_seconds).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is complete
                return
            if start is None:
                await send(message)
                return
            if message["type"] != "http.response.body":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._send_shaped(scope, start, b"".join(chunks), send)

        await self.app(scope, receive, reshape)

    async def _send_shaped(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        status = int(start["status"])
        headers = dict(start.get("headers") or [])
        new_body = json.dumps(error_body(status, body, scope, headers)).encode()
        kept = [(k, v) for k, v in start.get("headers") or [] if k.lower() not in _REPLACED]
        if status == HTTPStatus.SERVICE_UNAVAILABLE and b"retry-after" not in headers:
            kept.append((b"retry-after", self.retry_after))
        kept += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(new_body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": new_body})
