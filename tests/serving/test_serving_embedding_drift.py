"""Embedding drift through the runtime: the tiny model's mean-pooled embeddings of served texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bespoke_serving.runtime import Runtime
from bespoke_serving.settings import ServingSettings


def _runtime(version: Path, *, embeddings: bool) -> Runtime:
    settings = ServingSettings(
        model_uri=str(version),
        drift_embeddings=embeddings,
        drift_isolated=False,
        drift_interval_seconds=3600,  # readings are taken by hand below
        drift_min_rows=50,
        capture_window_size=120,
        torch_threads=1,
    )
    runtime = Runtime(settings)
    runtime.start(background=False)
    assert runtime.ready, runtime.load_error
    return runtime


def _serve(runtime: Runtime, texts: list[str]) -> None:
    for i in range(0, len(texts), 8):
        runtime.classify(texts[i : i + 8])
    assert runtime.capture is not None
    assert runtime.capture.flush()


def test_embeddings_match_what_the_model_gives_and_padding_does_not_change_them(
    tiny_version: Path,
) -> None:
    runtime = _runtime(tiny_version, embeddings=False)
    try:
        model = runtime.model
        predictions, alone = model.classify_with_embeddings(["fine"])  # type: ignore[union-attr]
        _, padded = model.classify_with_embeddings(  # type: ignore[union-attr]
            ["fine", "a much longer text that forces padding onto the short one"]
        )
        assert alone.shape == (1, 32)
        np.testing.assert_allclose(padded[0], alone[0], rtol=1e-4, atol=1e-5)
        assert [p.label for p in predictions] == [p.label for p in model.classify(["fine"])]  # type: ignore[union-attr]
    finally:
        runtime.close()


def test_planted_shift_moves_the_embeddings_and_reference_traffic_does_not(
    tiny_version: Path,
) -> None:
    reference = pd.read_parquet(tiny_version / "reference.parquet")["text"].tolist()
    runtime = _runtime(tiny_version, embeddings=True)
    try:
        assert runtime.drift is not None
        _serve(runtime, reference[:120])
        quiet = runtime.drift.run_once()
        assert quiet is not None
        assert quiet.features["embeddings"] < 0.55, quiet.features
        assert quiet.feature_methods["embeddings"] == "model roc_auc"

        # Words the reference never had: what the model makes of them moves away.
        shifted = [" ".join(f"zq{i}x{j}" for j in range(12)) for i in range(120)]
        _serve(runtime, shifted)
        loud = runtime.drift.run_once()
        assert loud is not None
        assert loud.features["embeddings"] > 0.55, loud.features
        assert loud.dataset_drift is True
    finally:
        runtime.close()


def test_embeddings_stay_out_of_the_captured_files(tiny_version: Path, tmp_path: Path) -> None:
    settings = ServingSettings(
        model_uri=str(tiny_version),
        drift_embeddings=True,
        drift_isolated=False,
        drift_interval_seconds=3600,
        capture_uri=str(tmp_path),
    )
    runtime = Runtime(settings)
    runtime.start(background=False)
    try:
        _serve(runtime, ["captured with an embedding"])
        assert runtime.capture is not None
        assert runtime.capture.snapshot()["embedding"].iloc[0].shape == (32,)
    finally:
        runtime.close()
    rows = [
        json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    assert rows
    assert set(rows[0]) == {"text", "prediction", "confidence", "timestamp"}
