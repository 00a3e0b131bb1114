"""The training loop: accumulation, periodic evaluation, early stopping, checkpoints, resume."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from bespoke_trainer.batching import epoch_batches, pack_batch, real_tokens
from bespoke_trainer.checkpoint import (
    LoopState,
    best_weights,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_best,
    save_checkpoint,
)
from bespoke_trainer.config import TrainingConfig, metric_higher_is_better
from bespoke_trainer.distributed import Dist
from bespoke_trainer.encoding import IGNORE_INDEX, Encoded, batch_loss, collate
from bespoke_trainer.fastpaths import (
    make_optimizer,
    packed_attention_backends,
    packed_causal_mask,
    set_adapter_input_casting,
)
from bespoke_trainer.lm_loss import chunked_causal_lm_loss, hidden_state_path
from bespoke_trainer.modeling import trainable_state

__all__ = ["LoopResult", "TrainStats", "train"]

log = logging.getLogger(__name__)

EvalFn = Callable[[], dict[str, Any]]
StepFn = Callable[[int, "TrainStats"], None]


@dataclass
class TrainStats:
    """What this process trained on in this run (after any resume), for logs and benchmarks."""

    samples: int = 0
    real_tokens: int = 0
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)


@dataclass
class LoopResult:
    """What the loop did, for the model card and metrics.json."""

    state: LoopState
    selection_metric: str
    total_steps: int
    resumed_from_step: int | None
    stats: TrainStats = field(default_factory=TrainStats)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _batches(
    lengths: np.ndarray, cfg: TrainingConfig, epoch: int, dist: Dist, *, packed: bool
) -> list[np.ndarray]:
    return epoch_batches(
        lengths,
        cfg.batch_size,
        seed=cfg.seed,
        epoch=epoch,
        rank=dist.rank,
        world_size=dist.world_size,
        # Packed batches carry no padding to save, and batches of only long or only short
        # examples would change what each step learns from for nothing.
        group_by_length=cfg.group_by_length and not packed,
    )


def _forward(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    causal: bool,
    model_computes_loss: bool,
) -> torch.Tensor:
    """The logits, or the loss itself when the model computes it (fused kernels)."""
    kwargs = _model_inputs(batch, causal=causal)
    if model_computes_loss:
        # Liger's fused linear + cross-entropy never materialises the logits.
        out: torch.Tensor = model(**kwargs, labels=batch["labels"])["loss"]
        return out
    logits: torch.Tensor = model(**kwargs)["logits"]
    return logits


def _model_inputs(batch: dict[str, torch.Tensor], *, causal: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"]}
    if "position_ids" in batch:
        # Packed: the model reads the packing from the position ids, or from the block-diagonal
        # mask when one was built (see _to_device).
        kwargs["position_ids"] = batch["position_ids"]
        if "attention_mask" in batch:
            kwargs["attention_mask"] = batch["attention_mask"]
    else:
        kwargs["attention_mask"] = batch["attention_mask"]
    if causal:
        # A KV cache is of no use in training and would hide the packing from the mask builder.
        kwargs["use_cache"] = False
    return kwargs


def _to_device(
    host: dict[str, torch.Tensor], device: torch.device, *, packed_mask: bool
) -> dict[str, torch.Tensor]:
    """Copy a batch to the device without making the host wait for it (pinned on CUDA)."""
    cuda = device.type == "cuda"
    batch = {
        k: (v.pin_memory() if cuda else v).to(device, non_blocking=True) for k, v in host.items()
    }
    if packed_mask and "position_ids" in batch:
        # transformers finds packed rows by checking on the host whether any position id
        # restarts: one device sync per step. The same mask built here needs none.
        batch["attention_mask"] = packed_causal_mask(batch["position_ids"])
    return batch


def _labelled(host: dict[str, torch.Tensor]) -> int:
    """Causal-LM tokens with a next-token target, counted on the host."""
    return int((host["labels"][:, 1:] != IGNORE_INDEX).sum())


def train(
    model: torch.nn.Module,
    data: Encoded,
    cfg: TrainingConfig,
    *,
    pad_id: int,
    evaluate: EvalFn,
    checkpoint_dir: Path,
    dist: Dist,
    model_computes_loss: bool = False,
    on_step: StepFn | None = None,
) -> LoopResult:
    """Train `model` in place; on return it holds the best weights by the selection metric.

    Causal-LM batches are packed without padding when `cfg.packing` is on; classification
    batches (and unpacked causal ones) are padded to their longest example, which
    `cfg.groupByLength` keeps close to every other example's length.

    On one process, a causal LM whose output layer is a frozen plain linear layer computes its
    loss from the hidden states in chunks (`lm_loss`), never holding the logits. `on_step` is
    called after every optimizer step with the step number and the running statistics.
    """
    device = dist.device
    inner = _unwrap(model)
    params = [p for p in inner.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg, device)
    lengths = np.fromiter((len(x) for x in data.input_ids), dtype=np.int64, count=len(data))
    causal = bool(len(data)) and isinstance(data.targets[0], list)
    packed = causal and cfg.packing
    model_computes_loss = model_computes_loss and causal
    # DDP's reducer needs the wrapper's own forward: the hidden-state path is one process only.
    single = model is inner
    head = hidden_state_path(model) if causal and single and not model_computes_loss else None
    attention = getattr(getattr(inner, "config", None), "_attn_implementation", None)
    packed_mask = packed and attention == "sdpa"

    def attention_backends() -> Any:
        return packed_attention_backends(device) if packed_mask else contextlib.nullcontext()

    batches_per_epoch = len(_batches(lengths, cfg, 0, dist, packed=packed))
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.gradient_accumulation_steps)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(  # type: ignore[no-untyped-call]
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )
    metric = cfg.early_stopping.metric or "evalLoss"
    higher = metric_higher_is_better(metric)

    state = LoopState()
    resumed: int | None = None
    latest = latest_checkpoint(checkpoint_dir)
    if latest is not None:
        state = load_checkpoint(latest, inner, optimizer, scheduler)
        resumed = state.step
        log.info("Resuming from checkpoint at step %d (epoch %d)", state.step, state.epoch + 1)
    else:
        torch.manual_seed(cfg.seed)

    eval_every = cfg.eval_every_steps
    started = time.monotonic()
    start_step = state.step
    seen = 0
    stats = TrainStats()
    # Losses and norms stay on the device until a log line needs them: a float() per step
    # would wait for the GPU to finish every step before queueing the next.
    step_losses: list[torch.Tensor] = []
    step_norms: list[torch.Tensor] = []
    window_loss: torch.Tensor | float = 0.0
    window_n = 0

    # Training runs under bf16 autocast on CUDA: adapters need no fp32 copy of their inputs.
    uncast = device.type == "cuda"

    def run_eval() -> bool:
        """Evaluate, track the best weights, and say whether to stop."""
        if uncast:
            set_adapter_input_casting(inner, True)
        result = evaluate() if dist.is_main else {}
        if uncast:
            set_adapter_input_casting(inner, False)
        result = dist.broadcast(result)
        value = float(result[metric])
        improved = state.best_metric is None or (
            value > state.best_metric if higher else value < state.best_metric
        )
        if improved:
            state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
            if dist.is_main:
                save_best(checkpoint_dir, trainable_state(inner))
        else:
            state.bad_evals += 1
        state.history.append({"step": state.step, "epoch": state.epoch + 1, **_headline(result)})
        log.info(
            "Eval step %d: %s (best %s %.4f at step %d)",
            state.step,
            " ".join(f"{k} {v:.4f}" for k, v in _headline(result).items()),
            metric,
            state.best_metric,
            state.best_step,
        )
        model.train()
        if cfg.early_stopping.metric and state.bad_evals >= cfg.early_stopping.patience:
            log.info(
                "Early stopping at step %d: %s did not improve for %d evaluations",
                state.step,
                metric,
                state.bad_evals,
            )
            state.stopped_early = True
            return True
        return False

    model.train()
    if uncast:
        set_adapter_input_casting(inner, False)
    stop = False
    while state.epoch < cfg.epochs and not stop:
        batches = _batches(lengths, cfg, state.epoch, dist, packed=packed)
        for bi in range(state.batch_in_epoch, len(batches)):
            idx = batches[bi]
            host = (
                pack_batch(data, idx, pad_id, cfg.max_sequence_length)
                if packed
                else collate(data, idx, pad_id)
            )
            batch = _to_device(host, device, packed_mask=packed_mask)
            count = _labelled(host) if causal else None
            with dist.autocast(), attention_backends():
                if head is not None:
                    decoder, weight = head
                    hidden = decoder(**_model_inputs(batch, causal=True))[0]
                    loss = chunked_causal_lm_loss(hidden, weight, batch["labels"], count or 0)
                else:
                    out = _forward(
                        model, batch, causal=causal, model_computes_loss=model_computes_loss
                    )
            if head is None:
                loss = out if model_computes_loss else batch_loss(out, batch, count)[0]
            (loss / cfg.gradient_accumulation_steps).backward()  # type: ignore[no-untyped-call]
            step_losses.append(loss.detach())
            window_loss = window_loss + step_losses[-1]
            window_n += 1
            seen += len(idx) * dist.world_size
            stats.samples += len(idx)
            stats.real_tokens += real_tokens(data, idx)
            last_in_epoch = bi == len(batches) - 1
            if (bi + 1) % cfg.gradient_accumulation_steps and not last_in_epoch:
                continue
            step_norms.append(torch.nn.utils.clip_grad_norm_(params, 1.0).detach())
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch_in_epoch = bi + 1
            if on_step is not None:
                on_step(state.step, stats)
            if state.step % 10 == 0 or state.step == total_steps or last_in_epoch:
                elapsed = time.monotonic() - started
                rate = seen / elapsed if elapsed > 0 else 0.0
                done = state.step - start_step
                eta = (total_steps - state.step) * elapsed / done if done else 0.0
                log.info(
                    "Step %d/%d epoch %d/%d loss %.4f lr %.2e %.1f samples/s ETA %s",
                    state.step,
                    total_steps,
                    state.epoch + 1,
                    cfg.epochs,
                    float(window_loss) / max(window_n, 1),
                    scheduler.get_last_lr()[0],
                    rate,
                    timedelta(seconds=round(eta)),
                )
                window_loss, window_n = 0.0, 0
            due_eval = eval_every is not None and state.step % eval_every == 0
            due_eval = due_eval or (eval_every is None and last_in_epoch)
            if due_eval and run_eval():
                stop = True
            if last_in_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
            if stop or state.step % cfg.checkpoint_every_steps == 0:
                if dist.is_main:
                    path = save_checkpoint(
                        checkpoint_dir, trainable_state(inner), optimizer, scheduler, state
                    )
                    log.info("Saved checkpoint at step %d to %s", state.step, path.name)
                dist.barrier()
            if stop:
                break
    if not state.history:
        run_eval()
    if uncast:
        set_adapter_input_casting(inner, True)
    last = latest_checkpoint(checkpoint_dir)
    if dist.is_main and (last is None or not last.name.endswith(f"{state.step:08d}")):
        # The final state is kept too: a restart after this point skips straight to evaluation.
        save_checkpoint(checkpoint_dir, trainable_state(inner), optimizer, scheduler, state)
    best = best_weights(checkpoint_dir) if dist.is_main else None
    best = dist.broadcast(best)
    if best is not None and state.best_step != state.step:
        load_weights(inner, {k: v.to(device) for k, v in best.items()})
        log.info("Restored the best weights from step %d", state.best_step)
    model.eval()
    stats.losses = torch.stack(step_losses).float().tolist() if step_losses else []
    stats.grad_norms = torch.stack(step_norms).float().tolist() if step_norms else []
    return LoopResult(
        state=state,
        selection_metric=metric,
        total_steps=total_steps,
        resumed_from_step=resumed,
        stats=stats,
    )


def _headline(result: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
