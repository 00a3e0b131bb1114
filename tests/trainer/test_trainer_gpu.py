"""GPU paths: bf16 autocast, QLoRA (4-bit base through bitsandbytes), torchrun with one GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_trainer_distributed import torchrun
from trainer_helpers import (
    EXAMPLES,
    ConfigFactory,
    keyword_rows,
    read_jsonl,
    summary_of,
    write_config,
    write_jsonl,
)

from bespoke_trainer.__main__ import main
from bespoke_trainer.distributed import Dist

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_training_runs_under_bf16_autocast(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    dist = Dist(device=torch.device("cuda", 0))
    with dist.autocast():
        out = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert out.dtype == torch.bfloat16
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "t.jsonl", keyword_rows(300, seed=1)),
        method={"type": "full"},
        training={"learningRate": "2e-3", "batchSize": 8},
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 0
    assert summary_of(config)["metrics"]["accuracy"] > 0.6


def test_qlora_trains_a_4bit_base(
    tmp_path: Path, make_config: ConfigFactory, tiny_llama: Path
) -> None:
    pytest.importorskip("bitsandbytes")
    config = make_config(
        model=tiny_llama,
        train=write_jsonl(tmp_path / "sft.jsonl", read_jsonl(EXAMPLES / "sft" / "train.jsonl")),
        task="causal-lm",
        method={"type": "qlora", "lora": {"r": 4, "alpha": 8, "dropout": "0.0"}},
        evaluation={"generationSamples": 4, "maxNewTokens": 6},
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 0
    v = Path(config["output"]["uri"])
    assert (v / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((v / "bespoke-version.json").read_text())["method"] == "qlora"
    history = json.loads((v / "metrics.json").read_text())["training"]["history"]
    assert history[-1]["evalLoss"] < history[0]["evalLoss"]


def test_torchrun_with_one_gpu(tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path) -> None:
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "t.jsonl", keyword_rows(160, seed=6)),
        training={"epochs": 1},
    )
    proc = torchrun(write_config(tmp_path, config), nproc=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary_of(config)["outcome"] == "Succeeded"
