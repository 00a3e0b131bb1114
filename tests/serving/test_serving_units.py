"""Settings, URIs, capture and the causal-LM path, without BentoML."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from version_factory import build_causal_lm_version

from bespoke_serving.capture import CaptureRecord, JsonlSink, TrafficCapture
from bespoke_serving.counters import ServingCounters
from bespoke_serving.runtime import NotReadyError, Runtime, WrongTaskError
from bespoke_serving.settings import ServingSettings, SettingsError
from bespoke_serving.uris import local_dir
from bespoke_serving.version import VersionError, read_version


def test_settings_come_from_env_with_defaults() -> None:
    settings = ServingSettings.from_env(
        {
            "BESPOKE_MODEL_URI": "/data/v3",
            "BESPOKE_VERSION": "3",
            "BESPOKE_DRIFT_METHOD": "psi",
            "BESPOKE_MERGE_ADAPTER": "true",
            "BESPOKE_NAMESPACE": "",
        }
    )
    assert settings.model_uri == "/data/v3"
    assert settings.version == 3
    assert settings.drift_method == "psi"
    assert settings.merge_adapter is True
    assert settings.namespace == "default"
    assert settings.max_texts_per_request == 64
    assert settings.max_request_bytes == 1_048_576


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BESPOKE_DRIFT_METHOD": "chi2"}, "BESPOKE_DRIFT_METHOD"),
        ({"BESPOKE_DRIFT_THRESHOLD": "1.5"}, "BESPOKE_DRIFT_THRESHOLD"),
        ({"BESPOKE_MAX_BATCH_SIZE": "lots"}, "BESPOKE_MAX_BATCH_SIZE"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ServingSettings.from_env(env)


def test_uris_resolve_to_local_directories(tmp_path: Path) -> None:
    assert local_dir("file:///srv/v1", "/mnt/pvc") == Path("/srv/v1")
    assert local_dir("/srv/v1", "/mnt/pvc") == Path("/srv/v1")
    assert local_dir("pvc://models/team/v1", "/mnt/pvc") == Path("/mnt/pvc/models/team/v1")
    with pytest.raises(ValueError, match="`ftp`"):
        local_dir("ftp://x/y", "/mnt/pvc")


def test_incomplete_or_mismatched_versions_are_refused(tiny_version: Path, tmp_path: Path) -> None:
    with pytest.raises(VersionError, match="COMPLETE"):
        read_version(tmp_path, None)
    with pytest.raises(VersionError, match="BESPOKE_VERSION is 2"):
        read_version(tiny_version, 2)
    assert read_version(tiny_version, 1).labels == ["negative", "positive"]


def test_capture_window_is_bounded_and_jsonl_rotates(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, max_bytes=1024, max_files=2, prefix="v1")
    capture = TrafficCapture(window_size=5, sink=sink)
    for i in range(40):
        capture.submit([f"text number {i:03d}"], ["positive"], [0.9])
    assert capture.flush()
    window = capture.snapshot()
    assert window["text"].tolist() == [f"text number {i:03d}" for i in range(35, 40)]
    assert list(window.columns) == ["text", "prediction", "confidence"]
    capture.close()
    files = sink.files()
    assert len(files) == 2
    kept = [json.loads(line)["text"] for f in files for line in f.read_text().splitlines()]
    # Rotation dropped the oldest lines, kept the newest in order.
    assert kept[-1] == "text number 039"
    assert kept == sorted(kept)
    assert len(kept) < 40


class _StuckSink(JsonlSink):
    """A disk that stops answering until `release` is set."""

    release = threading.Event()

    def write(self, records: Sequence[CaptureRecord]) -> None:
        self.release.wait(10)
        super().write(records)


def test_a_full_capture_queue_drops_new_records_and_counts_them(tmp_path: Path) -> None:
    sink = _StuckSink(tmp_path, max_bytes=1 << 20, max_files=2, prefix="v1")
    capture = TrafficCapture(window_size=10, sink=sink, max_queued_records=3)
    for i in range(5):
        capture.submit([f"t{i}"], ["positive"], [0.9])
    assert capture.dropped == 2  # t3 and t4: three were waiting on the stuck disk
    counters = ServingCounters()
    counters.bind("team-b", "reviews", 1, lambda: capture.dropped)
    assert (
        'bespoke_capture_dropped_total{customization="reviews",namespace="team-b",version="1"} 2.0'
        in counters.exposition()
    )
    sink.release.set()
    assert capture.flush()
    assert capture.snapshot()["text"].tolist() == ["t0", "t1", "t2"]
    capture.submit(["t5"], ["negative"], [0.8])  # room again once the disk caught up
    assert capture.flush()
    assert len(capture) == 4
    capture.close()


def test_causal_lm_version_generates_within_the_token_bound(tmp_path: Path) -> None:
    version = build_causal_lm_version(tmp_path)
    runtime = Runtime(
        ServingSettings(model_uri=str(version), max_new_tokens=4, drift_enabled=False)
    )
    runtime.start(background=False)
    assert runtime.ready, runtime.load_error
    out = runtime.generate("the movie was", max_new_tokens=50, temperature=0.0, top_p=1.0)
    assert out["version"] == 1
    tokens = runtime.model.tokenizer(out["text"], add_special_tokens=False)["input_ids"]  # type: ignore[union-attr]
    assert 0 < len(tokens) <= 4
    with pytest.raises(WrongTaskError, match="/generate"):
        runtime.classify(["x"])
    runtime.close()


def test_merged_adapter_gives_the_same_predictions(tiny_version: Path) -> None:
    texts = ["great food", "awful service", "fine"]
    outputs = []
    for merge in (False, True):
        runtime = Runtime(
            ServingSettings(model_uri=str(tiny_version), merge_adapter=merge, drift_enabled=False)
        )
        runtime.start(background=False)
        assert runtime.ready, runtime.load_error
        outputs.append(runtime.classify(texts))
        runtime.close()
    assert [o["label"] for o in outputs[0]] == [o["label"] for o in outputs[1]]
    assert [o["score"] for o in outputs[0]] == pytest.approx(
        [o["score"] for o in outputs[1]], abs=1e-5
    )


def test_requests_before_load_are_refused_as_not_ready(tiny_version: Path) -> None:
    runtime = Runtime(ServingSettings(model_uri=str(tiny_version), drift_enabled=False))
    assert runtime.ready is False
    with pytest.raises(NotReadyError, match="still loading"):
        runtime.classify(["too early"])
    assert runtime.drift_payload()["checkedAt"] is None


def test_a_failed_load_keeps_readiness_false_with_the_reason(
    tiny_version: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "v1"
    shutil.copytree(tiny_version, broken)
    shutil.rmtree(broken / "adapter")
    runtime = Runtime(ServingSettings(model_uri=str(broken), drift_enabled=False))
    runtime.start(background=False)
    assert runtime.ready is False
    with pytest.raises(NotReadyError, match="neither adapter/ nor model/"):
        runtime.classify(["x"])
