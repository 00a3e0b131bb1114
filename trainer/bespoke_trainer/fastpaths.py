"""Switchable speed-ups: fused AdamW, bf16 base with fp32 adapters, torch.compile, Liger."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterable
from typing import Any

import torch

from bespoke_trainer.config import TrainingConfig

__all__ = [
    "adapters_to_fp32",
    "apply_liger",
    "attention_implementation",
    "base_dtype",
    "liger_available",
    "make_optimizer",
    "maybe_compile",
    "packed_attention_backends",
    "packed_causal_mask",
    "set_adapter_input_casting",
]

log = logging.getLogger(__name__)


def base_dtype(training: TrainingConfig, method: str, device: torch.device) -> torch.dtype | None:
    """The dtype to load the base model in; None keeps the checkpoint's default (fp32).

    Only a frozen base (LoRA) goes to bf16: full fine-tuning keeps fp32 master weights, and a
    CPU keeps fp32 because its bf16 matmuls are slower than fp32 ones on most hosts.
    """
    if device.type == "cuda" and method == "lora" and training.bf16_base:
        return torch.bfloat16
    return None


def attention_implementation(device: torch.device) -> str | None:
    """FlashAttention 2 on CUDA when installed (packed rows become variable-length attention);
    otherwise None, which is transformers' default: SDPA."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"  # pragma: no cover - GPU only
    return None


def adapters_to_fp32(model: torch.nn.Module) -> int:
    """Keep every trainable parameter (adapters, classifier head) in fp32; return how many moved.

    Under bf16 autocast the matmuls still run in bf16, but the optimizer updates fp32 weights:
    small LoRA updates would otherwise round away.
    """
    moved = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            moved += 1
    return moved


def set_adapter_input_casting(model: torch.nn.Module, enabled: bool) -> int:
    """Turn PEFT's cast of each adapter's input to the adapter's dtype on or off.

    PEFT copies every LoRA layer's input to fp32 (the adapters' dtype) before the adapter's
    matmul, which bf16 autocast then copies back to bf16: two passes over the activations per
    adapted layer, and a separate saved copy per adapter where q, k and v could share one. Under
    autocast the result is the same without them (bf16 → fp32 → bf16 is exact), so training on
    CUDA turns the cast off; evaluation, which may run without autocast, gets it back. Returns
    how many layers were set.
    """
    layers = [m for m in model.modules() if hasattr(m, "_cast_input_dtype")]
    for layer in layers:
        setattr(layer, "cast_input_dtype_enabled", enabled)  # noqa: B010 (a plain attribute)
    return len(layers)


def make_optimizer(
    params: Iterable[torch.nn.Parameter], training: TrainingConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step on CUDA when `fusedOptimizer` is on."""
    fused = device.type == "cuda" and training.fused_optimizer
    return torch.optim.AdamW(
        list(params),
        lr=training.learning_rate,
        weight_decay=training.weight_decay,
        # `fused=None` is torch's own default (foreach where it can); False would force the
        # slow per-parameter loop.
        fused=True if fused else None,
    )


def maybe_compile(model: torch.nn.Module, training: TrainingConfig) -> torch.nn.Module:
    """Compile in place (parameter names, hence checkpoints and adapters, stay unchanged).

    Where the model is a stack of identical blocks, each block is compiled (regional
    compilation): one compiled graph serves every layer, so compiling takes seconds rather than
    minutes, and the loss, which may run outside the model's forward, needs no graph of its own.
    """
    if not training.compile:
        return model
    blocks = _repeated_blocks(model)
    # Sequence lengths vary from batch to batch: dynamic shapes avoid a recompile per length.
    for block in blocks or [model]:
        block.compile(dynamic=True)
    log.info(
        "Compiled %s with torch.compile (dynamic shapes)",
        f"{len(blocks)} repeated blocks" if blocks else "the model",
    )
    return model


def _repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The largest ModuleList whose members are all of one class (a model's layers)."""
    best: list[torch.nn.Module] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best):
            members = list(module)
            if len({type(m) for m in members}) == 1:
                best = members
    return best if len(best) > 1 else []


def packed_attention_backends(device: torch.device) -> Any:
    """SDPA kernels for packed rows with a block-diagonal mask: any but cuDNN's, on CUDA.

    With a mask, torch 2.11 on an H200 picks cuDNN's fused attention, which spends about 2 ms of
    host time per call (80 calls a step for Llama-1B: a third of the step's host time, measured
    with torch.profiler; benchmarks/README.md) on a kernel of 0.25–0.5 ms. The memory-efficient
    kernel takes the same mask without that cost.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(backends)  # pragma: no cover - GPU only


def packed_causal_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """Block-diagonal causal mask (rows, 1, width, width; True attends) for packed rows.

    Each run of position ids that restarts at 0 is one example; a token sees the earlier tokens
    of its own example only. Built on the device with no host sync.
    """
    segment = (position_ids == 0).cumsum(-1)
    same = segment[:, :, None] == segment[:, None, :]
    width = position_ids.shape[-1]
    causal = torch.ones(width, width, dtype=torch.bool, device=position_ids.device).tril()
    return (same & causal)[:, None]


def liger_available() -> bool:
    """Whether the Liger kernel package is importable (it needs CUDA and Triton)."""
    return importlib.util.find_spec("liger_kernel") is not None


def apply_liger(model: torch.nn.Module, device: torch.device) -> bool:
    """Swap in Liger's fused kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy).

    Applied to the base model before the adapters wrap it. Returns whether it was applied:
    without the package or a GPU, or for a model type Liger does not know, training goes on
    with the stock modules.
    """
    if device.type != "cuda" or not liger_available():
        log.info("Liger kernels requested but unavailable here (needs CUDA and liger-kernel)")
        return False
    from liger_kernel.transformers import _apply_liger_kernel_to_instance  # pragma: no cover

    try:  # pragma: no cover - GPU only
        _apply_liger_kernel_to_instance(model=model)
    except (ValueError, KeyError, AttributeError) as exc:  # pragma: no cover - GPU only
        log.warning("Liger kernels not applied: %s", exc)
        return False
    log.info("Applied Liger kernels")  # pragma: no cover - GPU only
    return True  # pragma: no cover - GPU only
