"""Checkpoints for resume: trainable weights, optimizer, scheduler, RNG and loop state."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "LoopState",
    "best_weights",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "save_best",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

_KEEP = 2


@dataclass
class LoopState:
    """Where the loop is; enough to continue exactly where a checkpoint left off."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory; trainable params never should.
    return {k: v.contiguous() for k, v in state.items()}


def save_checkpoint(
    root: Path,
    weights: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: LoopState,
) -> Path:
    """Write `step-<N>` under a temporary name, rename it, and keep the newest few."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-step-{state.step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_weights(weights), str(tmp / "trainable.safetensors"))
    rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
    _fsync_dir(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(root: Path, weights: dict[str, torch.Tensor]) -> None:
    """Keep the best weights seen so far (restored at the end of training)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".best.safetensors.tmp"
    save_file(_weights(weights), str(tmp))
    os.replace(tmp, root / "best.safetensors")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint, if any (temporary ones are ignored)."""
    found = sorted(p for p in root.glob("step-*") if (p / "state.json").exists())
    return found[-1] if found else None


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> LoopState:
    """Restore everything `save_checkpoint` wrote."""
    weights = load_file(str(path / "trainable.safetensors"))
    device = next(model.parameters()).device
    load_weights(model, {k: v.to(device) for k, v in weights.items()})
    blob = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["cpu"])
    if "cuda" in blob["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    return LoopState(**json.loads((path / "state.json").read_text(encoding="utf-8")))


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load trainable weights by name, failing on any name the model does not have."""
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"checkpoint has unknown weights: {result.unexpected_keys[:3]}")


def best_weights(root: Path) -> dict[str, torch.Tensor] | None:
    """The best weights saved so far, if any."""
    path = root / "best.safetensors"
    return load_file(str(path)) if path.exists() else None


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
