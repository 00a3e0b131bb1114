"""Evaluate a model on a held-out frame: metrics plus the predictions for the reference set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from bespoke_trainer.encoding import (
    batch_loss,
    collate,
    encode_causal,
    encode_classification,
    prompt_ids,
)
from bespoke_trainer.metrics import (
    classification_metrics,
    exact_match,
    fairness_audit,
    perplexity,
    token_f1,
)

__all__ = ["Evaluation", "evaluate"]


@dataclass
class Evaluation:
    """Metrics (headline and detail), the fairness audit and a reference frame."""

    metrics: dict[str, Any]
    fairness: dict[str, Any] | None
    reference: pd.DataFrame


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    *,
    task: str,
    labels: list[str],
    max_length: int,
    batch_size: int,
    generation_samples: int = 0,
    max_new_tokens: int = 64,
) -> Evaluation:
    """Compute the task's metrics on `frame` (the model is left in eval mode)."""
    model.eval()
    if task == "text-classification":
        return _classification(model, tokenizer, frame, labels, max_length, batch_size)
    return _causal(
        model, tokenizer, frame, max_length, batch_size, generation_samples, max_new_tokens
    )


def _classification(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    labels: list[str],
    max_length: int,
    batch_size: int,
) -> Evaluation:
    enc = encode_classification(frame, tokenizer, labels, max_length)
    device = _device(model)
    pad = int(tokenizer.pad_token_id or 0)
    probs, total, count = [], 0.0, 0
    for start in range(0, len(enc), batch_size):
        batch = collate(enc, list(range(start, min(start + batch_size, len(enc)))), pad)
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[
                "logits"
            ]
        _, summed, n = batch_loss(logits, batch)
        total += float(summed)
        count += n
        probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    p = np.concatenate(probs)
    y = np.asarray(enc.targets)
    metrics = classification_metrics(p, y, labels, total / max(count, 1))
    pred = p.argmax(axis=1)
    fairness = None
    if "group" in frame:
        fairness = fairness_audit(pred, y, frame["group"].astype(str).to_numpy(), labels)
    reference = pd.DataFrame(
        {
            "text": frame["text"].astype(str).to_numpy(),
            "label": frame["label"].astype(str).to_numpy(),
            "prediction": [labels[i] for i in pred],
            "confidence": p.max(axis=1).astype(float),
        }
    )
    return Evaluation(metrics=metrics, fairness=fairness, reference=reference)


def _causal(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    max_length: int,
    batch_size: int,
    samples: int,
    max_new_tokens: int,
) -> Evaluation:
    enc = encode_causal(frame, tokenizer, max_length)
    device = _device(model)
    pad = int(tokenizer.pad_token_id or 0)
    total, count = 0.0, 0
    for start in range(0, len(enc), batch_size):
        batch = collate(enc, list(range(start, min(start + batch_size, len(enc)))), pad)
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[
                "logits"
            ]
        _, summed, n = batch_loss(logits, batch)
        total += float(summed)
        count += n
    loss = total / max(count, 1)
    metrics: dict[str, Any] = {"evalLoss": loss, "perplexity": perplexity(loss)}
    sample = frame.iloc[: min(samples, len(frame))]
    preds, confs, ems, f1s = [], [], [], []
    for prompt, response in zip(sample["prompt"], sample["response"], strict=True):
        text, conf = _generate(model, tokenizer, str(prompt), max_new_tokens, device)
        preds.append(text)
        confs.append(conf)
        ems.append(exact_match(text, str(response)))
        f1s.append(token_f1(text, str(response)))
    if len(sample):
        metrics["exactMatch"] = float(np.mean(ems))
        metrics["tokenF1"] = float(np.mean(f1s))
        metrics["generationSamples"] = len(sample)
    reference = pd.DataFrame(
        {
            "text": sample["prompt"].astype(str).to_numpy(),
            "prediction": preds,
            "confidence": np.asarray(confs, dtype=float),
        }
    )
    return Evaluation(metrics=metrics, fairness=None, reference=reference)


def _generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int,
    device: torch.device,
) -> tuple[str, float]:
    """Greedy decoding; confidence is the mean probability of the chosen tokens."""
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], device=device)
    out = model.generate(  # type: ignore[operator]
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    new = out.sequences[0, ids.shape[1] :]
    probs = [
        float(torch.softmax(score[0].float(), dim=-1)[tok])
        for score, tok in zip(out.scores, new, strict=False)
    ]
    text = str(tokenizer.decode(new, skip_special_tokens=True)).strip()
    return text, float(np.mean(probs)) if probs else 0.0
