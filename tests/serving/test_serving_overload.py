"""Load shedding and the one error shape, at the ASGI level with stand-in apps (no model)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bespoke_serving.counters import ServingCounters
from bespoke_serving.error_shape import ErrorShape
from bespoke_serving.limits import RequestGuard, RequestLimits

Message = dict[str, Any]


class HeldApp:
    """An API that answers only once `release` is set, so requests pile up inside it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})


async def _request(
    app: Any, path: str = "/classify", body: bytes = b'{"texts": ["a"]}', method: str = "POST"
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", b"application/json")],
    }
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # no disconnect: the client waits for its answer
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_requests_beyond_the_concurrency_limit_get_503_with_retry_after_at_once() -> None:
    held = HeldApp()
    guard = RequestGuard(held, RequestLimits(), max_concurrent=2, retry_after_seconds=3)

    async def scenario() -> tuple[list[Any], Any, Any]:
        inside = [asyncio.create_task(_request(guard)) for _ in range(2)]
        while held.entered < 2:
            await asyncio.sleep(0)
        shed = await _request(guard)  # answered while the two are still inside
        held.release.set()
        done = [await task for task in inside]
        return done, shed, await _request(guard)

    inside, shed, after = asyncio.run(scenario())
    status, headers, body = shed
    assert status == 503
    assert headers[b"retry-after"] == b"3"
    assert json.loads(body) == {
        "error": "the service is answering 2 requests, the most it takes at once "
        "(BESPOKE_MAX_CONCURRENT_REQUESTS): retry after 3 s",
        "field": None,
        "limit": None,
    }
    assert [r[0] for r in inside] == [200, 200]
    assert after[0] == 200  # the slots are free again
    assert guard.in_flight == 0


def _answering(status: int, body: bytes, content_type: bytes, **headers: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        extra = [(k.encode(), v) for k, v in headers.items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body[:3], "more_body": True})
        await send({"type": "http.response.body", "body": body[3:]})

    return app


@pytest.mark.parametrize(
    ("status", "body", "content_type", "headers", "error", "field"),
    [
        (404, b"Not Found", b"text/plain", {}, "there is no /classify — the service answers", None),
        (405, b"Method Not Allowed", b"text/plain", {"allow": b"POST"}, "use POST", None),
        (
            409,
            b'[{"error":"this version serves causal-lm"}]',
            b"application/json",
            {},
            "serves causal-lm",
            None,
        ),
        (
            400,
            b'{"error":"1 validation error for Input","detail":[{"loc":["texts",0],"msg":"bad"}]}',
            b"application/json",
            {},
            "texts.0: bad",
            "texts.0",
        ),
        (500, b"Internal Server Error", b"text/plain", {}, "Internal Server Error", None),
        (503, b"", b"text/plain", {}, "Service Unavailable", None),
        (
            413,
            b'{"error": "x", "field": "texts", "limit": "maxTextsPerRequest"}',
            b"application/json",
            {},
            "x",
            "texts",
        ),
    ],
    ids=["404", "405", "list", "bentoml-validation", "500", "503-empty", "already-shaped"],
)
def test_every_error_response_is_reshaped_into_the_one_json_shape(
    status: int,
    body: bytes,
    content_type: bytes,
    headers: dict[str, bytes],
    error: str,
    field: str | None,
) -> None:
    app = ErrorShape(_answering(status, body, content_type, **headers), retry_after_seconds=2)
    got_status, got_headers, got_body = asyncio.run(_request(app))
    payload = json.loads(got_body)
    assert got_status == status
    assert set(payload) == {"error", "field", "limit"}
    assert error in payload["error"]
    assert payload["field"] == field
    assert got_headers[b"content-type"] == b"application/json"
    assert int(got_headers[b"content-length"]) == len(got_body)
    for name, value in headers.items():
        assert got_headers[name.encode()] == value
    assert (got_headers.get(b"retry-after") == b"2") == (status == 503)


def test_successful_responses_pass_through_untouched() -> None:
    app = ErrorShape(_answering(200, b"# metrics\n", b"text/plain"))
    assert asyncio.run(_request(app, "/metrics", method="GET")) == (
        200,
        {b"content-type": b"text/plain"},
        b"# metrics\n",
    )


def _samples(counters: ServingCounters) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("reason", "")): sample.value
        for family in counters.registry.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_shed_requests_are_counted_on_metrics_by_reason() -> None:
    held = HeldApp()
    counters = ServingCounters()
    counters.bind("team-b", "reviews", 3, lambda: 0)
    guard = RequestGuard(held, RequestLimits(), max_concurrent=1, counters=counters)

    async def scenario() -> None:
        inside = asyncio.create_task(_request(guard))
        while held.entered < 1:
            await asyncio.sleep(0)
        await _request(guard)
        await _request(guard)
        held.release.set()
        await inside

    asyncio.run(scenario())
    assert _samples(counters) == {
        ("bespoke_requests_shed_total", "concurrency"): 2,
        ("bespoke_requests_shed_total", "queue"): 0,
        ("bespoke_capture_dropped_total", ""): 0,
    }
    labels = 'customization="reviews",namespace="team-b",reason="concurrency",version="3"'
    assert f"bespoke_requests_shed_total{{{labels}}} 2.0" in counters.exposition()
