"""Causal-LM SFT on a tiny random Llama: response-only loss, chat template, LoRA and full."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from trainer_helpers import (
    EXAMPLES,
    ConfigFactory,
    read_jsonl,
    summary_of,
    write_config,
    write_jsonl,
)
from transformers import PreTrainedTokenizerBase

from bespoke_trainer.__main__ import main
from bespoke_trainer.encoding import IGNORE_INDEX, encode_causal, prompt_ids


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama))


def test_loss_only_on_response_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    frame = pd.DataFrame([{"prompt": "What is 2 plus 3?", "response": "2 plus 3 is 5."}])
    enc = encode_causal(frame, tokenizer, max_length=64)
    ids, labels = enc.input_ids[0], enc.targets[0]
    assert isinstance(labels, list)
    n_prompt = len(prompt_ids(tokenizer, "What is 2 plus 3?"))
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(labels[n_prompt:-1]) == tokenizer.decode(
        tokenizer("2 plus 3 is 5.", add_special_tokens=False)["input_ids"]
    )


def test_truncation_keeps_part_of_the_response(tokenizer: PreTrainedTokenizerBase) -> None:
    long_prompt = " ".join(["one"] * 40)
    frame = pd.DataFrame([{"prompt": long_prompt, "response": "two three four"}])
    enc = encode_causal(frame, tokenizer, max_length=16)
    labels = enc.targets[0]
    assert isinstance(labels, list)
    assert len(enc.input_ids[0]) <= 16
    assert any(t != IGNORE_INDEX for t in labels)


def test_chat_template_is_used_when_the_tokenizer_has_one(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    plain = prompt_ids(tokenizer, "what is one")
    tokenizer.chat_template = (
        "{% for m in messages %}[CLS] {{ m['content'] }} [SEP]{% endfor %}"
        "{% if add_generation_prompt %} item{% endif %}"
    )
    try:
        templated = prompt_ids(tokenizer, "what is one")
    finally:
        tokenizer.chat_template = None
    assert templated != plain
    assert tokenizer.convert_ids_to_tokens(templated) == [
        "[CLS]",
        "what",
        "is",
        "one",
        "[SEP]",
        "item",
    ]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_sft_end_to_end(
    tmp_path: Path, make_config: ConfigFactory, tiny_llama: Path, method: str
) -> None:
    rows = read_jsonl(EXAMPLES / "sft" / "train.jsonl")[:150]
    config = make_config(
        model=tiny_llama,
        train=write_jsonl(tmp_path / "sft.jsonl", rows),
        task="causal-lm",
        method={"type": method, "lora": {"r": 4, "alpha": 8, "dropout": "0.0"}},
        training={"epochs": 2, "learningRate": "3e-3" if method == "full" else "2e-2"},
        evaluation={"generationSamples": 4, "maxNewTokens": 6},
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 0
    summary = summary_of(config)
    m = summary["metrics"]
    assert set(m) == {"evalLoss", "perplexity", "exactMatch", "tokenF1"}
    assert m["perplexity"] == pytest.approx(math.exp(m["evalLoss"]))
    assert 0.0 <= m["exactMatch"] <= 1.0
    assert 0.0 <= m["tokenF1"] <= 1.0
    v = Path(config["output"]["uri"])
    doc = json.loads((v / "metrics.json").read_text())
    history = doc["training"]["history"]
    # Loss starts near ln(vocabulary size) for a random model; training must bring it down.
    assert history[-1]["evalLoss"] < history[0]["evalLoss"]
    assert m["evalLoss"] < math.log(400)
    ref = pd.read_parquet(v / "reference.parquet")
    assert list(ref.columns) == ["text", "prediction", "confidence"]
    assert len(ref) == 4
    assert (v / ("adapter" if method == "lora" else "model")).is_dir()
    meta = json.loads((v / "bespoke-version.json").read_text())
    assert meta["task"] == "causal-lm"
    assert meta["labels"] == []


def test_qlora_without_cuda_fails_fast(
    tmp_path: Path, make_config: ConfigFactory, tiny_llama: Path
) -> None:
    config = make_config(
        model=tiny_llama,
        train=EXAMPLES / "sft" / "train.jsonl",
        task="causal-lm",
        method={"type": "qlora"},
    )
    assert main(["--config", str(write_config(tmp_path, config))]) == 2
    summary = summary_of(config)
    assert summary["reason"] == "InvalidConfig"
    assert "CUDA" in summary["message"]
    assert not Path(config["output"]["uri"]).exists()
