"""The service under a real `bentoml serve` process, with MiniLM + a LoRA adapter trained here,
scraped by a real Prometheus."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from served_process import Served, start_prometheus, start_service
from version_factory import MINILM_DIR, build_classifier_version, obvious_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM with a LoRA adapter trained for a few steps on obvious sentiment data."""
    root = tmp_path_factory.mktemp("minilm-storage")
    return build_classifier_version(root, MINILM_DIR, steps=12, learning_rate=3e-3)


def _env(version: Path, **settings: str) -> dict[str, str]:
    """The serving variables for version 1 of `version`, one torch thread, plus `settings`."""
    return {
        "BESPOKE_MODEL_URI": str(version),
        "BESPOKE_VERSION": "1",
        "BESPOKE_TORCH_THREADS": "1",
        **settings,
    }


@pytest.fixture(scope="module")
def served(minilm_version: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("bentoml-serve")
    env = _env(
        minilm_version,
        BESPOKE_NAMESPACE="team-b",
        BESPOKE_CUSTOMIZATION="reviews",
        BESPOKE_MAX_TEXTS_PER_REQUEST="16",
        BESPOKE_MAX_CHARACTERS_PER_TEXT="500",
        BESPOKE_CAPTURE_WINDOW_SIZE="200",
        BESPOKE_DRIFT_MIN_ROWS="50",
        BESPOKE_DRIFT_INTERVAL_SECONDS="1",
    )
    service = start_service(env, workdir)
    try:
        service.wait_until("/readyz", limit_seconds=240)
        yield service
    finally:
        service.stop()


def test_obvious_inputs_get_the_right_labels(served: Served) -> None:
    texts = [
        "this was wonderful, I love it, excellent and amazing",
        "terrible, awful, I hate it, horrible and dreadful",
        "the food was great and fantastic",
        "the service was bad and poor",
    ]
    response = httpx.post(served.url + "/classify", json={"texts": texts}, timeout=60)
    assert response.status_code == 200, response.text
    assert [r["label"] for r in response.json()] == ["positive", "negative", "positive", "negative"]
    assert all(r["version"] == 1 for r in response.json())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b'{"texts": 1}', 422, "`texts`"),
        (b'{"texts": [' + b'"a",' * 16 + b'"a"]}', 413, "maxTextsPerRequest=16"),
        (b'{"texts": ["' + b"x" * 501 + b'"]}', 413, "maxCharactersPerText=500"),
    ],
    ids=["bad-json", "wrong-type", "too-many", "too-long"],
)
def test_bad_input_gets_4xx_from_the_real_server(
    served: Served, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(
        served.url + "/classify",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status
    assert message in response.json()["error"]


def _drive_traffic(served: Served) -> None:
    texts = obvious_texts(80, seed=9)["text"].tolist()
    for i in range(0, len(texts), 16):
        response = httpx.post(
            served.url + "/classify", json={"texts": texts[i : i + 16]}, timeout=60
        )
        assert response.status_code == 200


def test_metrics_carry_drift_gauges_matching_drift(served: Served) -> None:
    _drive_traffic(served)
    for _ in range(240):
        drift = httpx.get(served.url + "/drift", timeout=10).json()
        if drift["checkedAt"] is not None:
            break
        time.sleep(0.5)
    assert drift["checkedAt"] is not None, drift
    metrics = httpx.get(served.url + "/metrics", timeout=10).text
    labels = 'customization="reviews",namespace="team-b",version="1"'
    assert f"bespoke_drift_detected{{{labels}}}" in metrics
    assert f"bespoke_drift_share_ratio{{{labels}}}" in metrics
    # BentoML's own request metrics are still there.
    assert "bentoml_service_request_total" in metrics or "request_total" in metrics
    # So are the shed and dropped counters, from zero, with the version's labels.
    shed = 'customization="reviews",namespace="team-b",reason="concurrency",version="1"'
    assert f"bespoke_requests_shed_total{{{shed}}} 0.0" in metrics
    assert f"bespoke_capture_dropped_total{{{labels}}} 0.0" in metrics


def test_real_prometheus_scrapes_the_drift_gauges(served: Served, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is absent (apt-get install -y prometheus)")
    _drive_traffic(served)
    prometheus = start_prometheus(binary, served.url.removeprefix("http://"), tmp_path)
    try:
        prometheus.wait_until("/-/ready", limit_seconds=60)
        result: list[dict[str, object]] = []
        for _ in range(120):
            query = httpx.get(
                prometheus.url + "/api/v1/query",
                params={"query": "bespoke_drift_detected"},
                timeout=10,
            ).json()
            result = query["data"]["result"]
            if result:
                break
            time.sleep(0.5)
        assert result, "Prometheus never saw bespoke_drift_detected"
        labels = result[0]["metric"]
        assert isinstance(labels, dict)
        assert labels["namespace"] == "team-b"
        assert labels["customization"] == "reviews"
        assert labels["version"] == "1"
        assert set(labels) <= {
            "__name__",
            "namespace",
            "customization",
            "version",
            "job",
            "instance",
        }
        scores = httpx.get(
            prometheus.url + "/api/v1/query",
            params={"query": 'bespoke_drift_feature_score{feature="oovRate"}'},
            timeout=10,
        ).json()["data"]["result"]
        assert scores
        assert scores[0]["metric"]["customization"] == "reviews"
    finally:
        prometheus.stop()


def test_adaptive_batching_gives_each_concurrent_request_its_own_answers(
    minilm_version: Path, served: Served, tmp_path: Path
) -> None:
    """`serving.batching.mode: adaptive`: BentoML merges concurrent requests into model calls
    and splits the results back; every caller must get exactly the answers for its own texts."""
    env = _env(
        minilm_version,
        BESPOKE_BATCHING="adaptive",
        BESPOKE_MAX_BATCH_SIZE="16",
        BESPOKE_MAX_LATENCY_MS="2000",
        BESPOKE_DRIFT_ENABLED="false",
    )
    texts = obvious_texts(24, seed=5)["text"].tolist()
    requests = [texts[i : i + 3] for i in range(0, len(texts), 3)]
    # The greedy service (the default) answers the same texts one request at a time.
    expected = [_classify(served, r) for r in requests]
    adaptive = start_service(env, tmp_path)
    try:
        adaptive.wait_until("/readyz", limit_seconds=240)
        # BentoML learns how long to hold a batch open, so a round may still go unmerged.
        for _ in range(5):
            with ThreadPoolExecutor(max_workers=len(requests)) as pool:
                answers = list(pool.map(lambda r: _classify(adaptive, r), requests))
            for got, want in zip(answers, expected, strict=True):
                assert [a["label"] for a in got] == [w["label"] for w in want]
                assert [a["score"] for a in got] == pytest.approx(
                    [w["score"] for w in want], abs=1e-4
                )
            calls, merged_requests = _adaptive_batches(adaptive)
            if calls < merged_requests:
                break
    finally:
        adaptive.stop()
    assert calls < merged_requests, "BentoML never merged two requests into one model call"


def _classify(service: Served, texts: list[str]) -> list[dict[str, object]]:
    response = httpx.post(service.url + "/classify", json={"texts": texts}, timeout=120)
    assert response.status_code == 200, response.text
    answers: list[dict[str, object]] = response.json()
    return answers


def _adaptive_batches(service: Served) -> tuple[float, float]:
    """Model calls and the requests they served, from BentoML's batch-size histogram."""
    totals = {"_count": 0.0, "_sum": 0.0}
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(metrics):
        if family.name == "bentoml_service_adaptive_batch_size":
            for sample in family.samples:
                for suffix in totals:
                    if sample.name.endswith(suffix):
                        totals[suffix] += sample.value
    return totals["_count"], totals["_sum"]
