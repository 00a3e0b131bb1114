"""The switchable fast paths: which are on where, and that each keeps training correct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.tiny_models import tiny_causal_lm
from transformers import LlamaForCausalLM

from bespoke_trainer.config import LoraSettings, MethodConfig, TrainingConfig
from bespoke_trainer.distributed import Dist
from bespoke_trainer.encoding import IGNORE_INDEX, Encoded
from bespoke_trainer.fastpaths import (
    adapters_to_fp32,
    apply_liger,
    base_dtype,
    make_optimizer,
    maybe_compile,
)
from bespoke_trainer.loop import train
from bespoke_trainer.modeling import LoadedModel, apply_method

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _tiny_llama(dtype: torch.dtype, device: str) -> LlamaForCausalLM:
    """A seeded, randomly initialised 2-layer Llama (grouped-query attention, 64 tokens)."""
    model = tiny_causal_lm(64)
    assert isinstance(model, LlamaForCausalLM)
    return model.to(device=device, dtype=dtype)


def _lora_llama(
    dtype: torch.dtype = torch.float32, device: str = "cpu", *, checkpointing: bool = False
) -> torch.nn.Module:
    base = _tiny_llama(dtype, device)
    method = MethodConfig(type="lora", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    loaded = LoadedModel(base, None)  # type: ignore[arg-type]
    return apply_method(loaded, "causal-lm", method, gradient_checkpointing=checkpointing)


def _sequences(n: int, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids = [[int(x) for x in rng.integers(1, 64, size=int(k))] for k in rng.integers(3, 40, n)]
    targets = [[IGNORE_INDEX, *row[1:]] for row in ids]
    return Encoded(input_ids=ids, targets=targets, weights=np.ones(n, np.float32))


def _train(
    model: torch.nn.Module, data: Encoded, tmp: Path, device: torch.device, **cfg: Any
) -> Any:
    config = TrainingConfig(
        epochs=1, batch_size=4, learning_rate=1e-2, checkpoint_every_steps=10**6, **cfg
    )
    return train(
        model,
        data,
        config,
        pad_id=0,
        evaluate=lambda: {"evalLoss": 0.0},
        checkpoint_dir=tmp,
        dist=Dist(device=device),
    )


def test_defaults_are_on_only_where_safe() -> None:
    t = TrainingConfig()
    assert t.packing
    assert not t.group_by_length  # it can cost accuracy: see the config comment
    assert t.fused_optimizer
    assert t.bf16_base
    assert not t.compile
    assert not t.liger_kernels
    assert not t.gradient_checkpointing
    assert base_dtype(t, "lora", CUDA) == torch.bfloat16
    # Full fine-tuning keeps fp32 master weights; a CPU keeps fp32 throughout.
    assert base_dtype(t, "full", CUDA) is None
    assert base_dtype(t, "lora", CPU) is None
    assert base_dtype(TrainingConfig(bf16Base=False), "lora", CUDA) is None


def test_optimizer_is_fused_only_on_cuda() -> None:
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert not make_optimizer(p, TrainingConfig(), CPU).defaults["fused"]
    # Built, not stepped: the fused flag is decided at construction.
    off = TrainingConfig(fusedOptimizer=False)
    assert not make_optimizer(p, off, CUDA).defaults["fused"]


def test_bf16_base_keeps_fp32_adapters_that_learn(tmp_path: Path) -> None:
    # The CUDA layout (bf16 frozen base, fp32 adapters) run on CPU under CPU bf16 autocast.
    model = _lora_llama(torch.bfloat16)
    assert adapters_to_fp32(model) == 0  # PEFT already keeps adapter weights in fp32
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(p.dtype == torch.float32 for p in trainable.values())
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    before = {n: p.detach().clone() for n, p in trainable.items()}
    data = _sequences(8)
    dist = Dist()
    dist.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # type: ignore[method-assign]
    result = train(
        model,
        data,
        TrainingConfig(epochs=1, batch_size=4, learning_rate=1e-2, checkpoint_every_steps=10**6),
        pad_id=0,
        evaluate=lambda: {"evalLoss": 0.0},
        checkpoint_dir=tmp_path,
        dist=dist,
    )
    assert all(p.dtype == torch.float32 for p in trainable.values())
    moved = [n for n, p in trainable.items() if not torch.equal(p.detach(), before[n])]
    assert len(moved) == len(trainable)
    assert all(g > 0 for g in result.stats.grad_norms)


def test_adapters_to_fp32_moves_a_bf16_head() -> None:
    head = torch.nn.Linear(4, 2).to(torch.bfloat16)
    frozen = torch.nn.Linear(4, 4).to(torch.bfloat16).requires_grad_(False)
    model = torch.nn.Sequential(frozen, head)
    assert adapters_to_fp32(model) == 2
    assert head.weight.dtype == torch.float32
    assert frozen.weight.dtype == torch.bfloat16


def test_packed_and_padded_training_follow_the_same_loss_curve(tmp_path: Path) -> None:
    data = _sequences(24)
    packed = _train(_lora_llama(), data, tmp_path / "a", CPU, packing=True)
    # Length grouping would reorder the unpacked batches; off, both see the same batches.
    padded = _train(_lora_llama(), data, tmp_path / "b", CPU, packing=False, group_by_length=False)
    assert packed.stats.real_tokens == padded.stats.real_tokens
    np.testing.assert_allclose(packed.stats.losses, padded.stats.losses, rtol=1e-4)
    np.testing.assert_allclose(packed.stats.grad_norms, padded.stats.grad_norms, rtol=1e-3)


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path: Path) -> None:
    data = _sequences(8)
    plain = _train(_lora_llama(), data, tmp_path / "a", CPU)
    ckpt = _train(_lora_llama(checkpointing=True), data, tmp_path / "b", CPU)
    np.testing.assert_allclose(ckpt.stats.grad_norms, plain.stats.grad_norms, rtol=1e-4)


def test_compile_off_leaves_the_model_alone_and_liger_needs_cuda() -> None:
    model = _lora_llama()
    forward = model.forward
    assert maybe_compile(model, TrainingConfig()) is model
    assert model.forward == forward
    assert apply_liger(model, CPU) is False


# --- CUDA only: these run on a GPU machine (benchmarks/gpu_check.sh) ------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_adamw_bf16_base_and_packing_train_on_cuda(tmp_path: Path) -> None:
    model = _lora_llama(torch.bfloat16, "cuda")
    adapters_to_fp32(model)
    params = [p for p in model.parameters() if p.requires_grad]
    assert make_optimizer(params, TrainingConfig(), CUDA).defaults["fused"]
    data = _sequences(32)
    result = _train(model, data, tmp_path, CUDA)
    assert all(np.isfinite(result.stats.losses))
    assert all(g > 0 for g in result.stats.grad_norms)
    assert result.stats.losses[-1] < result.stats.losses[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_packed_loss_matches_padded_on_cuda_under_bf16(tmp_path: Path) -> None:
    data = _sequences(16)
    packed = _train(_lora_llama(torch.bfloat16, "cuda"), data, tmp_path / "a", CUDA)
    padded = _train(
        _lora_llama(torch.bfloat16, "cuda"),
        data,
        tmp_path / "b",
        CUDA,
        packing=False,
        group_by_length=False,
    )
    # bf16 matmuls: the same sums in a different order, so a looser tolerance than on CPU.
    np.testing.assert_allclose(packed.stats.losses[0], padded.stats.losses[0], rtol=2e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# torch 2.11's inductor imports torch.utils.mkldnn, which warns about its own jit use.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_trains_on_cuda(tmp_path: Path) -> None:
    model = _lora_llama(torch.bfloat16, "cuda")
    maybe_compile(model, TrainingConfig(compile=True))
    result = _train(model, _sequences(16), tmp_path, CUDA, compile=True)
    assert all(np.isfinite(result.stats.losses))
    assert all(name.count("_orig_mod") == 0 for name, _ in model.named_parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_liger_kernels_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("liger_kernel")
    base = _tiny_llama(torch.bfloat16, "cuda")
    assert apply_liger(base, CUDA)
    method = MethodConfig(type="lora", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    model = apply_method(LoadedModel(base, None), "causal-lm", method)  # type: ignore[arg-type]
    result = train(
        model,
        _sequences(16),
        TrainingConfig(epochs=1, batch_size=4, learning_rate=1e-2, checkpoint_every_steps=10**6),
        pad_id=0,
        evaluate=lambda: {"evalLoss": 0.0},
        checkpoint_dir=tmp_path,
        dist=Dist(device=CUDA),
        model_computes_loss=True,
    )
    assert all(np.isfinite(result.stats.losses))
