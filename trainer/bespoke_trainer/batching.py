"""Batch layout for training: length-grouped batch order and padding-free packed rows."""

from __future__ import annotations

import numpy as np
import torch

from bespoke_trainer.encoding import IGNORE_INDEX, Encoded

__all__ = ["MEGABATCH_FACTOR", "epoch_batches", "pack_batch", "real_tokens"]

# Examples are sorted by length within windows of this many batches: wide enough that batches
# are nearly uniform in length, narrow enough that batch order stays random (as HF's
# LengthGroupedSampler does).
MEGABATCH_FACTOR = 50


def epoch_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    group_by_length: bool = False,
) -> list[np.ndarray]:
    """This rank's batches (example indices) for one epoch.

    The order depends only on (seed, epoch), so a resumed run sees the same batches. With
    `group_by_length`, each batch holds examples of similar length, so padding to the longest
    in the batch costs little; every rank gets the same number of equally sized batches.
    """
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if not group_by_length:
        per_rank = n // world_size if world_size > 1 else n
        order = order[rank::world_size][:per_rank]
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = order[: (n // world_size) * world_size]
    global_batch = batch_size * world_size
    window = global_batch * MEGABATCH_FACTOR
    groups: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        groups += [chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch)]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    # The longest batch goes first, so running out of memory shows at step 1, not mid-epoch.
    longest = int(np.argmax([lengths[g].max() for g in groups])) if groups else 0
    if groups:
        groups[0], groups[longest] = groups[longest], groups[0]
    # Striding keeps ranks' batches alike in length; every global batch's size is a multiple
    # of the world size, so no rank is ever left with an empty batch.
    return [g[rank::world_size] for g in groups]


def real_tokens(enc: Encoded, idx: np.ndarray | list[int]) -> int:
    """Non-padding tokens in the selected examples."""
    return sum(len(enc.input_ids[i]) for i in idx)


def _rows(lengths: list[int], capacity: int) -> list[list[int]]:
    # First-fit decreasing: few rows, each at most `capacity` tokens (or one long example).
    rows: list[list[int]] = []
    room: list[int] = []
    for j in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        for r, free in enumerate(room):
            if lengths[j] <= free:
                rows[r].append(j)
                room[r] -= lengths[j]
                break
        else:
            rows.append([j])
            room.append(max(capacity, lengths[j]) - lengths[j])
    return rows


def pack_batch(
    enc: Encoded, idx: np.ndarray | list[int], pad_id: int, capacity: int
) -> dict[str, torch.Tensor]:
    """Pack causal-LM examples end to end into rows of at most `capacity` tokens.

    Position ids restart at 0 for every example; the model turns that into a block-diagonal
    causal mask (SDPA/eager) or variable-length attention (FlashAttention), so no example
    attends to another. The first label of each example is ignored: it is where the previous
    example's last token would otherwise be trained to predict it, and unpacked it is never a
    target anyway. The loss over the packed batch is therefore the one over the padded batch.
    No attention mask is returned: its absence is what lets the model read the packing from
    the position ids.
    """
    sel = [int(i) for i in idx]
    lengths = [len(enc.input_ids[i]) for i in sel]
    rows = _rows(lengths, capacity)
    width = max(sum(lengths[j] for j in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for j in row:
            i, n = sel[j], lengths[j]
            target = enc.targets[i]
            assert isinstance(target, list)
            input_ids[r, at : at + n] = torch.tensor(enc.input_ids[i], dtype=torch.long)
            labels[r, at + 1 : at + n] = torch.tensor(target[1:n], dtype=torch.long)
            positions[r, at : at + n] = torch.arange(n)
            at += n
        # Padding is a segment of its own (positions restart), so it attends only to itself.
        positions[r, at:] = torch.arange(width - at)
    return {
        "input_ids": input_ids,
        "position_ids": positions,
        "labels": labels,
        "weights": torch.tensor(enc.weights[np.asarray(sel)], dtype=torch.float32),
    }
