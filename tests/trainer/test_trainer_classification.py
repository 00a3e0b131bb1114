"""Text classification end to end on a tiny random BERT: LoRA and full fine-tuning, the version
artifact contract, adapter reload, champion evaluation and warm start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from trainer_helpers import (
    ConfigFactory,
    build_config,
    keyword_rows,
    sentiment_rows,
    summary_of,
    write_config,
    write_jsonl,
)

from bespoke_trainer.__main__ import main
from bespoke_trainer.artifacts import (
    TRAINING_HASH,
    VersionPaths,
    claim_staging,
    recorded_training_hash,
)
from bespoke_trainer.evaluate import evaluate
from bespoke_trainer.modeling import load_version
from bespoke_trainer.summary import MAX_BYTES

Run = tuple[dict[str, Any], dict[str, Any], Path]


def _train(tmp: Path, config: dict[str, Any], name: str = "config.json") -> dict[str, Any]:
    assert main(["--config", str(write_config(tmp, config, name))]) == 0
    return summary_of(config)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", sentiment_rows(60))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, data_file: Path) -> Run:
    tmp = tmp_path_factory.mktemp("lora")
    config = build_config(tmp, model=tiny_bert, train=data_file)
    summary = _train(tmp, config)
    return config, summary, Path(config["output"]["uri"])


def test_lora_run_learns_and_reports(lora_run: Run) -> None:
    _, summary, version_dir = lora_run
    assert summary["outcome"] == "Succeeded"
    assert summary["exitCode"] == 0
    assert summary["reason"] is None
    assert set(summary["metrics"]) == {"accuracy", "macroF1", "calibrationError", "evalLoss"}
    # A frozen random encoder learns little in a few steps: learning is asserted for full
    # fine-tuning here and for LoRA on the real MiniLM (test_trainer_minilm.py).
    assert 0.0 <= summary["metrics"]["accuracy"] <= 1.0
    assert summary["artifactUri"] == str(version_dir)
    assert summary["dataFingerprint"].startswith("sha256:")
    assert len(json.dumps(summary).encode()) < MAX_BYTES


def test_version_directory_contract(lora_run: Run) -> None:
    _, summary, v = lora_run
    assert (v / "COMPLETE").is_file()
    assert not (v.parent / ".v1.partial").exists()
    assert {p.name for p in (v / "adapter").iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert not list(v.rglob("*.bin")), "weights must be safetensors only"
    assert (v / "tokenizer" / "tokenizer.json").is_file()
    assert list((v / "checkpoints").glob("step-*"))
    meta = json.loads((v / "bespoke-version.json").read_text())
    assert meta["version"] == 1
    assert meta["task"] == "text-classification"
    assert meta["method"] == "lora"
    assert meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["dataFingerprint"] == summary["dataFingerprint"]
    assert meta["maxSequenceLength"] == 48
    assert meta["baseModel"]["uri"]
    adapter = json.loads((v / "adapter" / "adapter_config.json").read_text())
    assert "classifier" in adapter["modules_to_save"]
    metrics = json.loads((v / "metrics.json").read_text())
    assert set(metrics["metrics"]["perClass"]) == set(meta["labels"])
    matrix = metrics["metrics"]["confusionMatrix"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["data"]["test"]
    ref = pd.read_parquet(v / "reference.parquet")
    assert list(ref.columns) == ["text", "label", "prediction", "confidence"]
    assert len(ref) == metrics["data"]["test"]
    assert ref["confidence"].between(0, 1).all()
    assert (ref["prediction"] == ref["label"]).mean() == pytest.approx(
        summary["metrics"]["accuracy"]
    )
    tokens = json.loads((v / "vocabulary.json").read_text())["tokens"]
    assert 0 < len(tokens) <= 20_000
    assert all(t == t.lower() for t in tokens)
    card = (v / "model-card.md").read_text()
    assert summary["dataFingerprint"] in card
    assert "Limitations" in card
    assert "r=4" in card


def test_adapter_reloads_to_the_same_predictions(lora_run: Run, tmp_path: Path) -> None:
    _, _, v = lora_run
    loaded, meta = load_version(v, tmp_path)
    ref = pd.read_parquet(v / "reference.parquet")
    again = evaluate(
        loaded.model,
        loaded.tokenizer,
        ref[["text", "label"]],
        task="text-classification",
        labels=meta["labels"],
        max_length=meta["maxSequenceLength"],
        batch_size=7,
    )
    assert list(again.reference["prediction"]) == list(ref["prediction"])
    assert again.reference["confidence"].to_numpy() == pytest.approx(
        ref["confidence"].to_numpy(), abs=1e-5
    )


def test_rerunning_a_complete_version_reports_it_again(lora_run: Run, tmp_path: Path) -> None:
    config, summary, v = lora_run
    stamp = (v / "COMPLETE").read_text()
    again = {**config, "output": {**config["output"], "terminationLogPath": str(tmp_path / "t")}}
    assert main(["--config", str(write_config(tmp_path, again))]) == 0
    assert summary_of(again)["metrics"] == summary["metrics"]
    assert (v / "COMPLETE").read_text() == stamp


def test_warm_start_and_champion_on_the_same_test_set(
    lora_run: Run, tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, data_file: Path
) -> None:
    _, v1_summary, v1 = lora_run
    # A learning rate too small to move the weights: v2 must equal the version it started from.
    config = make_config(
        model=tiny_bert,
        train=data_file,
        version=2,
        output=v1.parent / "v2",
        training={"epochs": 1, "learningRate": "1e-12", "warmStart": True},
        warmStartUri=str(v1),
        championUri=str(v1),
    )
    summary = _train(tmp_path, config)
    assert summary["championMetrics"] == pytest.approx(v1_summary["metrics"])
    assert summary["metrics"] == pytest.approx(v1_summary["metrics"], abs=1e-6)


def test_warm_start_with_different_labels_is_invalid_data(
    lora_run: Run, tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    _, _, v1 = lora_run
    rows = [r for r in sentiment_rows(60) if r["label"] != "neutral"]
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "two.jsonl", rows),
        version=2,
        warmStartUri=str(v1),
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 3
    assert "warm-start" in summary_of(config)["message"]


def test_full_fine_tuning_writes_full_weights_that_reload(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, data_file: Path
) -> None:
    train = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(300, seed=1))
    config = make_config(
        model=tiny_bert,
        train=train,
        method={"type": "full"},
        training={"learningRate": "2e-3", "epochs": 3, "batchSize": 8},
    )
    summary = _train(tmp_path, config)
    v = Path(config["output"]["uri"])
    assert (v / "model" / "model.safetensors").is_file()
    assert not (v / "adapter").exists()
    # Chance is 1/3: the keyword decides the class.
    assert summary["metrics"]["accuracy"] > 0.6
    loaded, meta = load_version(v, tmp_path)
    ref = pd.read_parquet(v / "reference.parquet")
    again = evaluate(
        loaded.model,
        loaded.tokenizer,
        ref[["text", "label"]],
        task="text-classification",
        labels=meta["labels"],
        max_length=meta["maxSequenceLength"],
        batch_size=16,
    )
    assert list(again.reference["prediction"]) == list(ref["prediction"])


def test_gradient_checkpointing_trains_the_adapter(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, data_file: Path
) -> None:
    config = make_config(
        model=tiny_bert,
        train=data_file,
        training={"epochs": 1, "gradientCheckpointing": True},
    )
    summary = _train(tmp_path, config)
    assert summary["outcome"] == "Succeeded"
    from safetensors.torch import load_file

    adapter = load_file(
        str(Path(config["output"]["uri"]) / "adapter" / "adapter_model.safetensors")
    )
    # PEFT initialises lora_B to zeros: non-zero values prove gradients reached the adapter.
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b
    assert any(float(t.abs().sum()) > 0 for t in lora_b)


def test_warm_start_across_method_families_is_invalid_config(
    lora_run: Run, tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, data_file: Path
) -> None:
    _, _, v1 = lora_run
    config = make_config(
        model=tiny_bert, train=data_file, version=2, method={"type": "full"}, warmStartUri=str(v1)
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 2
    assert "warm start needs both" in summary_of(config)["message"]


def test_a_complete_version_of_another_spec_is_not_reported_as_this_one(
    lora_run: Run, tmp_path: Path
) -> None:
    config, summary, v = lora_run
    # The same version number over the same storage, from an earlier customization's spec.
    earlier = tmp_path / "v1"
    shutil.copytree(v, earlier)
    (earlier / TRAINING_HASH).write_text("a" * 64 + "\n", encoding="utf-8")
    output = {"uri": str(earlier), "terminationLogPath": str(tmp_path / "t")}

    refused = {**config, "output": output, "trainingHash": "b" * 64}
    assert main(["--config", str(write_config(tmp_path, refused))]) == 2
    result = summary_of(refused)
    assert result["reason"] == "InvalidConfig"
    assert "trained from another spec" in result["message"]

    same = {**config, "output": output, "trainingHash": "a" * 64}
    assert main(["--config", str(write_config(tmp_path, same))]) == 0
    assert summary_of(same)["metrics"] == summary["metrics"]


def test_checkpoints_of_another_spec_are_discarded_not_resumed(tmp_path: Path) -> None:
    paths = VersionPaths(str(tmp_path / "v1"), tmp_path / "v1", tmp_path / ".v1.partial")
    claim_staging(paths, "a" * 64)
    (paths.checkpoints / "step-10").mkdir()

    claim_staging(paths, "a" * 64)  # the same version's pod, restarted: resumes
    assert (paths.checkpoints / "step-10").is_dir()

    claim_staging(paths, "b" * 64)  # the same number, another spec: starts over
    assert list(paths.checkpoints.iterdir()) == []
    assert recorded_training_hash(paths.staging) == "b" * 64
