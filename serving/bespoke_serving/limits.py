"""Request limits and input validation, enforced in an ASGI middleware before BentoML sees a body.

Every rejection is a JSON body `{"error": ..., "field": ..., "limit": ...}` naming the field
and, where one applies, the limit (by its API name, e.g. `maxTextsPerRequest`):
400 malformed JSON, 413 body or batch too large, 415 not JSON, 422 wrong shape or value, and 503
with `Retry-After` when more requests are in the service than `max_concurrent` (load shed before
the body is read).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from bespoke_serving.counters import COUNTERS, ServingCounters

__all__ = ["Problem", "RequestGuard", "RequestLimits", "check_classify", "check_generate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class RequestLimits:
    """The `serving.limits` of the customization."""

    max_texts_per_request: int = 64
    max_characters_per_text: int = 4000
    max_new_tokens: int = 256
    max_request_bytes: int = 1_048_576


@dataclass(frozen=True)
class Problem:
    """Why a request is refused."""

    status: int
    error: str
    field: str | None = None
    limit: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def body(self) -> bytes:
        """The JSON response body."""
        return json.dumps({"error": self.error, "field": self.field, "limit": self.limit}).encode()


def _unicode(text: str) -> bool:
    """False for a string holding an unpaired UTF-16 surrogate (`"\\ud800"` in JSON): Python's
    JSON reader lets it through, but it is no text a tokenizer (or BentoML) can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(name: str) -> Problem:
    return Problem(
        422,
        f"`{name}` holds an unpaired surrogate escape (\\ud800-\\udfff), which is not text — "
        "send valid Unicode",
        name,
    )


def _object(payload: Any, allowed: set[str]) -> Problem | None:
    if not isinstance(payload, dict):
        return Problem(422, "the body must be a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        return Problem(422, f"unknown field `{unknown[0]}`", unknown[0])
    return None


def check_classify(payload: Any, limits: RequestLimits) -> Problem | None:
    """Validate a `/classify` body: `{"texts": [str, ...]}`."""
    if (problem := _object(payload, {"texts"})) is not None:
        return problem
    texts = payload.get("texts")
    if not isinstance(texts, list):
        return Problem(422, "`texts` is required and must be a list of strings", "texts")
    if not texts:
        return Problem(422, "`texts` must hold at least one text", "texts")
    if len(texts) > limits.max_texts_per_request:
        return Problem(
            413,
            f"{len(texts)} texts exceed maxTextsPerRequest={limits.max_texts_per_request}",
            "texts",
            "maxTextsPerRequest",
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            return Problem(422, f"`texts[{i}]` must be a string", f"texts[{i}]")
        if not _unicode(text):
            return _not_unicode(f"texts[{i}]")
        if len(text) > limits.max_characters_per_text:
            return Problem(
                413,
                f"`texts[{i}]` has {len(text)} characters, more than "
                f"maxCharactersPerText={limits.max_characters_per_text}",
                f"texts[{i}]",
                "maxCharactersPerText",
            )
    return None


def _number(payload: dict[str, Any], name: str, low: float, high: float) -> Problem | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return Problem(422, f"`{name}` must be a number", name)
    if not low <= value <= high:
        return Problem(422, f"`{name}` must be between {low} and {high}", name)
    return None


def check_generate(payload: Any, limits: RequestLimits) -> Problem | None:
    """Validate a `/generate` body: prompt plus bounded generation parameters."""
    allowed = {"prompt", "max_new_tokens", "temperature", "top_p"}
    if (problem := _object(payload, allowed)) is not None:
        return problem
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return Problem(422, "`prompt` is required and must be a non-empty string", "prompt")
    if not _unicode(prompt):
        return _not_unicode("prompt")
    if len(prompt) > limits.max_characters_per_text:
        return Problem(
            413,
            f"`prompt` has {len(prompt)} characters, more than "
            f"maxCharactersPerText={limits.max_characters_per_text}",
            "prompt",
            "maxCharactersPerText",
        )
    tokens = payload.get("max_new_tokens")
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            return Problem(422, "`max_new_tokens` must be a positive integer", "max_new_tokens")
        if tokens > limits.max_new_tokens:
            return Problem(
                422,
                f"`max_new_tokens`={tokens} exceeds maxNewTokens={limits.max_new_tokens}",
                "max_new_tokens",
                "maxNewTokens",
            )
    return _number(payload, "temperature", 0.0, 2.0) or _number(payload, "top_p", 0.01, 1.0)


_CHECKS: dict[str, Callable[[Any, RequestLimits], Problem | None]] = {
    "/classify": check_classify,
    "/generate": check_generate,
}


class RequestGuard:
    """ASGI middleware: sheds load, bounds body size and validates API bodies, replaying
    accepted ones.

    At most `max_concurrent` API requests are in the service at once (one event loop per
    worker, so a plain counter is exact); the next is answered 503 with `Retry-After` before
    its body is read, so a flood costs a few bytes per refused request.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: RequestLimits,
        max_concurrent: int | None = None,
        retry_after_seconds: int = 1,
        counters: ServingCounters = COUNTERS,
    ) -> None:
        self.app = app
        self.limits = limits
        self.max_concurrent = max_concurrent
        self.retry_after_seconds = retry_after_seconds
        self.counters = counters
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = _CHECKS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if check is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.max_concurrent is not None and self.in_flight >= self.max_concurrent:
            self.counters.shed("concurrency")
            await _reject(send, self._overloaded())
            return
        self.in_flight += 1
        try:
            body, problem = await self._read(scope, receive)
            if problem is None:
                problem = _parse_and_check(body, check, self.limits)
            if problem is not None:
                await _reject(send, problem)
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    def _overloaded(self) -> Problem:
        return Problem(
            503,
            f"the service is answering {self.in_flight} requests, the most it takes at once "
            f"(BESPOKE_MAX_CONCURRENT_REQUESTS): retry after {self.retry_after_seconds} s",
            headers=((b"retry-after", str(self.retry_after_seconds).encode()),),
        )

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, Problem | None]:
        limit = self.limits.max_request_bytes
        too_big = Problem(
            413, f"request body exceeds maxRequestBytes={limit}", None, "maxRequestBytes"
        )
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return b"", Problem(415, "the body must be application/json")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return b"", too_big
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", Problem(400, "the client disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                # Stop reading at once: an oversized body must not be buffered whole.
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _parse_and_check(
    body: bytes, check: Callable[[Any, RequestLimits], Problem | None], limits: RequestLimits
) -> Problem | None:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return Problem(400, f"the body is not valid JSON: {exc}")
    return check(payload, limits)


def _replay(body: bytes, downstream: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, the app may wait for a disconnect: hand it the real channel.
        return await downstream()

    return receive


async def _reject(send: Send, problem: Problem) -> None:
    body = problem.body()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *problem.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
