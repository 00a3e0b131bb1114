"""The training loop: accumulation, periodic evaluation, early stopping, checkpoints, resume."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

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
from bespoke_trainer.encoding import Encoded, batch_loss, collate
from bespoke_trainer.modeling import trainable_state

__all__ = ["LoopResult", "train"]

log = logging.getLogger(__name__)

EvalFn = Callable[[], dict[str, Any]]


@dataclass
class LoopResult:
    """What the loop did, for the model card and metrics.json."""

    state: LoopState
    selection_metric: str
    total_steps: int
    resumed_from_step: int | None


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _batches(n: int, cfg: TrainingConfig, epoch: int, dist: Dist) -> list[np.ndarray]:
    # The order depends only on (seed, epoch), so a resumed run sees the same batches.
    order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
    per_rank = len(order) // dist.world_size if dist.world_size > 1 else len(order)
    order = order[dist.rank :: dist.world_size][:per_rank]
    return [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]


def train(
    model: torch.nn.Module,
    data: Encoded,
    cfg: TrainingConfig,
    *,
    pad_id: int,
    evaluate: EvalFn,
    checkpoint_dir: Path,
    dist: Dist,
    tokens_per_example: Callable[[np.ndarray], int] | None = None,
) -> LoopResult:
    """Train `model` in place; on return it holds the best weights by the selection metric."""
    device = dist.device
    inner = _unwrap(model)
    params = [p for p in inner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    batches_per_epoch = len(_batches(len(data), cfg, 0, dist))
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
    window_loss, window_n = 0.0, 0

    def run_eval() -> bool:
        """Evaluate, track the best weights, and say whether to stop."""
        result = evaluate() if dist.is_main else {}
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
    stop = False
    while state.epoch < cfg.epochs and not stop:
        batches = _batches(len(data), cfg, state.epoch, dist)
        for bi in range(state.batch_in_epoch, len(batches)):
            batch = {k: v.to(device) for k, v in collate(data, batches[bi], pad_id).items()}
            with dist.autocast():
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )["logits"]
            loss, _, _ = batch_loss(logits, batch)
            (loss / cfg.gradient_accumulation_steps).backward()  # type: ignore[no-untyped-call]
            window_loss += float(loss.detach())
            window_n += 1
            seen += len(batches[bi]) * dist.world_size
            last_in_epoch = bi == len(batches) - 1
            if (bi + 1) % cfg.gradient_accumulation_steps and not last_in_epoch:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch_in_epoch = bi + 1
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
                    window_loss / max(window_n, 1),
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
    return LoopResult(
        state=state, selection_metric=metric, total_steps=total_steps, resumed_from_step=resumed
    )


def _headline(result: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
