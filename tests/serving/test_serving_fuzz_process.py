"""Schemathesis, positive and negative, against a real `bentoml serve` of a tiny version.

Every operation of the served OpenAPI document gets requests that fit its schema and requests
that break it; beyond the schema, unknown paths, wrong methods and strings that are not Unicode.
No answer may be a 5xx, and every error answer must be the one JSON shape
`{"error", "field", "limit"}`. The counts are printed for the record.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from served_process import Served, start_service

pytestmark = pytest.mark.slow

#: Examples per operation and mode: enough to reach every branch of the guard, bounded in time.
EXAMPLES = 30
_SENT = ("method", "url", "json", "headers", "params", "content", "data")
_SHAPE = {"error", "field", "limit"}


@pytest.fixture(scope="module")
def served(tiny_version: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {
        "BESPOKE_MODEL_URI": str(tiny_version),
        "BESPOKE_VERSION": "1",
        "BESPOKE_TORCH_THREADS": "1",
        "BESPOKE_MAX_TEXTS_PER_REQUEST": "8",
        "BESPOKE_MAX_CHARACTERS_PER_TEXT": "200",
        "BESPOKE_MAX_NEW_TOKENS": "4",
        "BESPOKE_MAX_REQUEST_BYTES": "4096",
        "BESPOKE_DRIFT_ENABLED": "false",
    }
    service = start_service(env, tmp_path_factory.mktemp("bentoml-fuzz"))
    try:
        service.wait_until("/readyz", limit_seconds=240)
        yield service
    finally:
        service.stop()


def _problem(response: httpx.Response) -> str | None:
    """Why an answer breaks the contract, or None."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:200]}"
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"non-JSON {response.status_code} body: {response.text[:200]!r}"
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"{response.status_code} with content-type {response.headers.get('content-type')}"
    if not isinstance(body, dict) or set(body) != _SHAPE:
        return f"{response.status_code} body not in the one shape: {body!r}"
    return None


class Tally:
    """Answers by status, and every contract breach with the request that caused it."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.breaches: list[str] = []
        self.no_cases: list[str] = []

    def record(self, what: str, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if (problem := _problem(response)) is not None:
            self.breaches.append(f"{what} -> {problem}")


def _fuzz(client: httpx.Client, strategy: Any, label: str, tally: Tally) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case: Any) -> None:
        kwargs = {k: v for k, v in case.as_transport_kwargs().items() if k in _SENT}
        if isinstance(kwargs.get("data"), bytes | str):  # raw bytes (syntax fuzzing): content
            kwargs["content"] = kwargs.pop("data")
        try:
            response = client.request(**kwargs)
        except httpx.LocalProtocolError:
            return  # a header httpx itself refuses to send never reaches the server
        tally.record(f"{label} {json.dumps(kwargs, default=str)[:300]}", response)

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body (GET /healthz) has no negative case.
        tally.no_cases.append(label)


def test_schemathesis_positive_and_negative_finds_no_5xx_and_no_non_json_error(
    served: Served,
) -> None:
    schema = schemathesis.openapi.from_url(served.url + "/docs.json")
    tally = Tally()
    operations = []
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations.append(f"{operation.method.upper()} {operation.path}")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{mode.value} {operation.method.upper()} {operation.path}"
                _fuzz(client, operation.as_strategy(generation_mode=mode), label, tally)
        for method, path in [("GET", "/nope"), ("DELETE", "/classify"), ("POST", "/drift")]:
            tally.record(f"{method} {path}", client.request(method, path))
        for body in (b'{"texts": ["\\ud800"]}', b'{"prompt": "\\udfff"}'):
            for path in ("/classify", "/generate"):
                headers = {"content-type": "application/json"}
                tally.record(
                    f"POST {path} {body!r}", client.post(path, content=body, headers=headers)
                )
    total = sum(tally.statuses.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    print(
        f"\nschemathesis vs bentoml serve: {len(operations)} operations {sorted(operations)}, "
        f"{total} requests, statuses {dict(sorted(tally.statuses.items()))}, "
        f">=500: {server_errors}, contract breaches: {len(tally.breaches)}, "
        f"no cases to generate: {tally.no_cases}"
    )
    assert not any(label.startswith("positive") for label in tally.no_cases)
    assert {"POST /classify", "POST /generate", "GET /readyz"} <= set(operations)
    assert tally.breaches == []
    assert server_errors == 0
    assert any(status >= 400 for status in tally.statuses)  # negative mode reached the guard
