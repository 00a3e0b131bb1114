"""Turn canonical frames into token batches, and compute the (optionally weighted) loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE_INDEX",
    "Encoded",
    "batch_loss",
    "collate",
    "encode_causal",
    "encode_classification",
    "prompt_ids",
]

IGNORE_INDEX = -100


@dataclass
class Encoded:
    """Token ids per example, with targets (class index, or per-token labels) and weights."""

    input_ids: list[list[int]]
    targets: list[int] | list[list[int]]
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_classification(
    frame: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    max_length: int,
    weights: np.ndarray | None = None,
) -> Encoded:
    """Tokenize `text` and map `label` to its index in `labels`."""
    index = {label: i for i, label in enumerate(labels)}
    ids = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)["input_ids"]
    return Encoded(
        input_ids=[list(x) for x in ids],
        targets=[index[label] for label in frame["label"]],
        weights=weights if weights is not None else np.ones(len(frame), dtype=np.float32),
    )


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids of a prompt, through the chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        out: Any = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        # Depending on the tokenizer class this is a list of ids or a BatchEncoding.
        ids: Any = out["input_ids"] if hasattr(out, "keys") else out
        return [int(x) for x in ids]
    return [int(x) for x in tokenizer(prompt + "\n")["input_ids"]]


def encode_causal(
    frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> Encoded:
    """Prompt + response + EOS, with the loss on response tokens only."""
    eos = tokenizer.eos_token_id
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    for prompt, response in zip(frame["prompt"], frame["response"], strict=True):
        p = prompt_ids(tokenizer, str(prompt))
        r = [int(x) for x in tokenizer(str(response), add_special_tokens=False)["input_ids"]]
        if eos is not None:
            r = [*r, int(eos)]
        # Keep at least part of the response: a truncated prompt still teaches the answer.
        p = p[-max(1, max_length // 2) :] if len(p) + len(r) > max_length else p
        ids = (p + r)[:max_length]
        lab = ([IGNORE_INDEX] * len(p) + r)[:max_length]
        inputs.append(ids)
        targets.append(lab)
    return Encoded(input_ids=inputs, targets=targets, weights=np.ones(len(frame), np.float32))


def collate(enc: Encoded, idx: list[int] | np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the selected examples into one batch."""
    rows = [enc.input_ids[i] for i in idx]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        input_ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[j, : len(r)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask}
    first = enc.targets[0]
    if isinstance(first, list):
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for j, i in enumerate(idx):
            t = enc.targets[i]
            assert isinstance(t, list)
            labels[j, : len(t)] = torch.tensor(t, dtype=torch.long)
        batch["labels"] = labels
    else:
        batch["labels"] = torch.tensor([enc.targets[i] for i in idx], dtype=torch.long)
    batch["weights"] = torch.tensor(enc.weights[np.asarray(idx)], dtype=torch.float32)
    return batch


def batch_loss(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Return (mean weighted loss for the step, summed unweighted loss, count) for a batch.

    The summed loss and count let evaluation average over tokens or examples exactly. A
    causal-LM `count` of labelled tokens known on the host saves counting them on the device
    (which waits for it).
    """
    labels = batch["labels"]
    if labels.dim() == 1:
        per = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        weighted = (per * batch["weights"]).mean()
        return weighted, per.sum().detach(), int(labels.numel())
    # Causal LM: token t predicts token t+1.
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    per_tok = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if count is None:
        count = int((shift_labels != IGNORE_INDEX).sum())
    return per_tok / max(count, 1), per_tok.detach(), count
