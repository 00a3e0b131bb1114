"""Padding-free packing keeps attention inside each example; length grouping keeps every example."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tests.tiny_models import tiny_causal_lm

from bespoke_trainer.batching import epoch_batches, pack_batch, real_tokens
from bespoke_trainer.encoding import IGNORE_INDEX, Encoded, batch_loss, collate

VOCAB = 97
PAD = 0


def _tiny(kind: str, attn: str) -> torch.nn.Module:
    model = tiny_causal_lm(
        VOCAB, family=kind, max_position_embeddings=256, attn_implementation=attn
    )
    model.eval()
    return model


def _examples(lengths: list[int], seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids, targets = [], []
    for n in lengths:
        row = [int(x) for x in rng.integers(1, VOCAB, size=n)]
        prompt = int(rng.integers(1, n)) if n > 1 else 0
        ids.append(row)
        targets.append([IGNORE_INDEX] * prompt + row[prompt:])
    return Encoded(input_ids=ids, targets=targets, weights=np.ones(len(lengths), np.float32))


def _loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"], "use_cache": False}
    if "position_ids" in batch:
        kwargs["position_ids"] = batch["position_ids"]
    else:
        kwargs["attention_mask"] = batch["attention_mask"]
    _, summed, count = batch_loss(model(**kwargs)["logits"], batch)
    return summed, count


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("capacity", [1000, 24])
def test_packed_loss_is_the_token_weighted_sum_of_separate_losses(
    kind: str, attn: str, capacity: int
) -> None:
    model = _tiny(kind, attn)
    enc = _examples([5, 17, 9, 1, 12, 3, 20])
    idx = list(range(len(enc)))
    with torch.no_grad():
        separate = [_loss(model, collate(enc, [i], PAD)) for i in idx]
        packed_sum, packed_count = _loss(model, pack_batch(enc, idx, PAD, capacity))
    total = torch.stack([s for s, _ in separate]).sum()
    count = sum(n for _, n in separate)
    assert packed_count == count
    # A single leaked attention weight moves the loss by far more than float32 round-off.
    torch.testing.assert_close(packed_sum, total, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(packed_sum / packed_count, total / count, rtol=1e-5, atol=1e-6)


def test_packed_logits_match_each_example_alone() -> None:
    model = _tiny("llama", "sdpa")
    enc = _examples([6, 11, 4])
    packed = pack_batch(enc, [0, 1, 2], PAD, capacity=1000)
    assert packed["input_ids"].shape == (1, 21)
    with torch.no_grad():
        logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        )["logits"][0]
        # pack_batch lays examples longest first: 11, 6, 4.
        at = 0
        for i in (1, 0, 2):
            n = len(enc.input_ids[i])
            alone = model(input_ids=torch.tensor([enc.input_ids[i]]), use_cache=False)["logits"]
            torch.testing.assert_close(logits[at : at + n], alone[0], rtol=1e-4, atol=1e-5)
            at += n


def test_a_plain_concatenation_would_leak_across_examples() -> None:
    # The control for the tests above: without restarted positions the second example sees
    # the first, and the losses differ, so equality above is evidence and not a tautology.
    model = _tiny("llama", "sdpa")
    enc = _examples([8, 8])
    packed = pack_batch(enc, [0, 1], PAD, capacity=1000)
    leaky = dict(packed, position_ids=torch.arange(16).unsqueeze(0))
    with torch.no_grad():
        good, _ = _loss(model, packed)
        bad, _ = _loss(model, leaky)
    # Ten times the tolerance the equality tests above allow.
    assert float((good - bad).abs()) > 10 * (1e-4 + 1e-5 * float(good.abs()))


def test_pack_batch_layout() -> None:
    enc = _examples([10, 7, 3, 12, 2])
    out = pack_batch(enc, [0, 1, 2, 3, 4], PAD, capacity=14)
    ids, pos, labels = out["input_ids"], out["position_ids"], out["labels"]
    real = int((labels != IGNORE_INDEX).sum())
    assert ids.shape[1] <= 14
    assert int((ids != PAD).sum()) == real_tokens(enc, [0, 1, 2, 3, 4]) == 34
    # Every example appears once, with positions restarting at 0.
    starts = int((pos == 0).sum())
    pad_rows = int(((ids == PAD) & (pos == 0)).sum())
    assert starts - pad_rows == 5
    expected = 0
    for target in enc.targets:
        assert isinstance(target, list)
        expected += sum(1 for t in target[1:] if t != IGNORE_INDEX)
    assert real == expected


@pytest.mark.parametrize("world", [1, 2, 3])
def test_length_grouped_batches_cover_every_example_once(world: int) -> None:
    lengths = np.random.default_rng(1).integers(3, 200, size=1001)
    per_rank = [
        epoch_batches(lengths, 8, seed=7, epoch=2, rank=r, world_size=world, group_by_length=True)
        for r in range(world)
    ]
    assert len({len(b) for b in per_rank}) == 1
    for step in zip(*per_rank, strict=True):
        assert len({len(b) for b in step}) == 1  # DDP ranks stay in lockstep
    seen = np.concatenate([b for batches in per_rank for b in batches])
    assert len(seen) == len(set(seen.tolist())) == (1001 // world) * world


def test_length_grouping_cuts_padding_and_keeps_order_seeded() -> None:
    lengths = np.random.default_rng(2).integers(3, 200, size=2000)

    def padded(batches: list[np.ndarray]) -> int:
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    grouped = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    plain = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=False)
    assert padded(grouped) < 0.75 * padded(plain)
    again = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    other = epoch_batches(lengths, 16, seed=1, epoch=1, group_by_length=True)
    assert all(np.array_equal(a, b) for a, b in zip(grouped, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(grouped, other, strict=True))
    assert lengths[grouped[0]].max() == lengths.max()  # the longest batch runs first
