"""The BentoML service through its ASGI app, in-process, with a tiny model."""

from __future__ import annotations

import json
import time
from typing import Any

import bentoml
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bespoke_monitor.methods import drift_strength

# BentoML 1.4 reads `model_fields` from instances on every request, which pydantic 2.11+
# deprecates; the warning is BentoML's and would otherwise turn each request into a 500 here.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")


def _runtime() -> Any:
    return bentoml.get_current_service().runtime


def test_health_ready_and_classify(asgi_client: Any) -> None:
    assert asgi_client.get("/healthz").status_code == 200
    assert asgi_client.get("/readyz").status_code == 200
    texts = ["the food was great", "awful dreadful service", "ok"]
    response = asgi_client.post("/classify", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [set(item) for item in body] == [{"label", "score", "version"}] * 3
    assert all(item["version"] == 1 for item in body)
    assert all(item["label"] in {"negative", "positive"} for item in body)
    assert all(0.5 <= item["score"] <= 1.0 for item in body)
    # Same answers as the model itself gives, so batching did not mix requests up.
    direct = _runtime().model.classify(texts)
    assert [p.label for p in direct] == [i["label"] for i in body]
    assert [p.score for p in direct] == pytest.approx([i["score"] for i in body])


def test_generate_on_a_classification_version_is_a_conflict(asgi_client: Any) -> None:
    response = asgi_client.post("/generate", json={"prompt": "hello"})
    assert response.status_code == 409
    assert "use /classify" in response.text


BAD_REQUESTS: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("not json", "/classify", b"{texts: [", {}, 400, "not valid JSON"),
    ("not an object", "/classify", b"[1, 2]", {}, 422, "JSON object"),
    ("texts missing", "/classify", b"{}", {}, 422, "`texts` is required"),
    ("texts not a list", "/classify", b'{"texts": "hello"}', {}, 422, "`texts` is required"),
    ("no texts", "/classify", b'{"texts": []}', {}, 422, "at least one"),
    ("a text not a string", "/classify", b'{"texts": ["a", 3]}', {}, 422, "`texts[1]`"),
    ("unknown field", "/classify", b'{"texts": ["a"], "x": 1}', {}, 422, "`x`"),
    (
        "too many texts",
        "/classify",
        json.dumps({"texts": ["a"] * 5}).encode(),
        {},
        413,
        "maxTextsPerRequest=4",
    ),
    (
        "text too long",
        "/classify",
        json.dumps({"texts": ["a", "b" * 301]}).encode(),
        {},
        413,
        "maxCharactersPerText=300",
    ),
    (
        "body too large",
        "/classify",
        json.dumps({"texts": ["a" * 200] * 30}).encode(),
        {},
        413,
        "maxRequestBytes=4096",
    ),
    (
        "not JSON content",
        "/classify",
        b"texts=a",
        {"content-type": "text/plain"},
        415,
        "application/json",
    ),
    ("prompt missing", "/generate", b"{}", {}, 422, "`prompt`"),
    (
        "too many new tokens",
        "/generate",
        b'{"prompt": "a", "max_new_tokens": 9}',
        {},
        422,
        "maxNewTokens=8",
    ),
    (
        "bad temperature",
        "/generate",
        b'{"prompt": "a", "temperature": -1}',
        {},
        422,
        "`temperature`",
    ),
    (
        "bool as tokens",
        "/generate",
        b'{"prompt": "a", "max_new_tokens": true}',
        {},
        422,
        "`max_new_tokens`",
    ),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_malformed_or_oversized_input_gets_a_4xx_naming_the_problem(
    asgi_client: Any, case: tuple[str, str, bytes, dict[str, str], int, str]
) -> None:
    _, path, body, headers, status, message = case
    response = asgi_client.post(
        path, content=body, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    # The worker survived: a good request still works.
    assert asgi_client.post("/classify", json={"texts": ["fine"]}).status_code == 200


def _reading_of_all_traffic(client: Any) -> dict[str, Any]:
    """The first reading whose window was taken after all traffic so far was captured.

    Readings are computed only when new traffic arrived, so this is the next one due.
    """
    runtime = _runtime()
    assert runtime.capture.flush()
    captured = runtime.capture.ingested
    for _ in range(600):  # a bound on waiting, not an assertion on speed
        if runtime.drift.latest_ingested >= captured:
            payload: dict[str, Any] = client.get("/drift").json()
            return payload
        time.sleep(0.1)
    raise AssertionError(f"no drift reading of {captured} captured records")


def _gauges(runtime: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(runtime.collector.exposition()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_drift_stays_quiet_on_reference_traffic_and_flags_planted_shift(
    asgi_client: Any, tiny_version: Any
) -> None:
    reference = pd.read_parquet(tiny_version / "reference.parquet")
    texts = reference["text"].tolist()[:160]
    for i in range(0, len(texts), 4):
        assert asgi_client.post("/classify", json={"texts": texts[i : i + 4]}).status_code == 200
    quiet = _reading_of_all_traffic(asgi_client)
    assert quiet["datasetDrift"] is False, quiet
    assert quiet["windowRows"] == 150

    shifted = [" ".join(f"zq{i}x{j}" for j in range(25)) for i in range(160)]
    for i in range(0, len(shifted), 4):
        assert asgi_client.post("/classify", json={"texts": shifted[i : i + 4]}).status_code == 200
    # Detected at the first reading that began after the traffic: within one interval.
    loud = _reading_of_all_traffic(asgi_client)
    assert loud["datasetDrift"] is True, loud
    assert loud["driftShare"] >= 0.5
    assert loud["features"]["oovRate"] is not None
    assert loud["version"] == 1

    # The gauges say what /drift says (retry until both come from the same reading).
    base = {("namespace", "team-a"), ("customization", "sentiment"), ("version", "1")}
    for _ in range(100):
        payload = asgi_client.get("/drift").json()
        gauges = _gauges(_runtime())
        stamp = gauges[("bespoke_drift_last_run_timestamp_seconds", frozenset(base))]
        if stamp == pytest.approx(pd.Timestamp(payload["checkedAt"]).timestamp()):
            break
    assert gauges[("bespoke_drift_share_ratio", frozenset(base))] == payload["driftShare"]
    assert gauges[("bespoke_drift_detected", frozenset(base))] == 1.0
    assert gauges[("bespoke_drift_window_rows", frozenset(base))] == payload["windowRows"]
    for feature, score in payload["features"].items():
        key = ("bespoke_drift_feature_score", frozenset(base | {("feature", feature)}))
        assert gauges[key] == pytest.approx(
            drift_strength(score, payload["featureMethods"][feature])
        )
    for label, ratio in payload["predictionMix"].items():
        key = ("bespoke_prediction_mix_ratio", frozenset(base | {("label", label)}))
        assert gauges[key] == pytest.approx(ratio)


def test_traffic_is_captured_as_jsonl(asgi_client: Any) -> None:
    asgi_client.post("/classify", json={"texts": ["captured text one", "captured two"]})
    _runtime().capture.flush()
    files = sorted(asgi_client.capture_dir.glob("v1-*.jsonl"))
    assert files
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    captured = [r for r in rows if r["text"].startswith("captured")]
    assert [r["text"] for r in captured][-2:] == ["captured text one", "captured two"]
    assert all(r["prediction"] in {"negative", "positive"} for r in captured)
    assert all(0.0 <= r["confidence"] <= 1.0 for r in captured)
