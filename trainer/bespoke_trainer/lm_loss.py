"""Causal-LM loss straight from the decoder's hidden states, chunk by chunk, without logits.

The usual path writes the whole logits tensor (tokens × vocabulary, 4352 × 128,256 for one
Llama-1B step of the benchmark: 1.1 GB in bf16), upcasts it to fp32 for the cross-entropy (2.2
GB more) and keeps the log-softmax for the backward pass. Here the output projection, the
cross-entropy and its gradient run one chunk of tokens at a time in the forward pass: only the
gradient with respect to the hidden states (tokens × hidden, 18 MB) is kept. The frozen output
layer gets no gradient, which is what LoRA needs; a trained or adapted head takes the usual path.
"""

from __future__ import annotations

from typing import Any

import torch

from bespoke_trainer.encoding import IGNORE_INDEX

__all__ = ["chunked_causal_lm_loss", "hidden_state_path"]

# Model families whose logits are exactly `lm_head(final hidden state)` (no soft-capping, no
# logit scaling) and whose decoder is `model.model`.
_PLAIN_HEAD_MODELS = frozenset(
    {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "olmo2"}
)
# fp32 logits per chunk: about 512 MiB whatever the vocabulary.
_CHUNK_ELEMENTS = 2**27


class _LinearCrossEntropy(torch.autograd.Function):
    """sum of CE(hidden @ weightᵀ, labels) over the labelled tokens; weight is frozen."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        n = hidden.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // weight.shape[0])
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden) if hidden.requires_grad else None
        for start in range(0, n, chunk):
            h, y = hidden[start : start + chunk], labels[start : start + chunk]
            logits = (h @ weight.t()).float()
            valid = y != IGNORE_INDEX
            target = y.clamp(min=0)
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, target[:, None]).squeeze(1)
            total += ((lse - picked) * valid).sum()
            if grad is None:
                continue
            # d CE / d logits = softmax - one-hot, zero on unlabelled tokens; in place.
            probs = logits.sub_(lse[:, None]).exp_()
            rows = torch.arange(len(y), device=y.device)
            probs[rows, target] -= 1.0
            probs.mul_(valid[:, None])
            grad[start : start + chunk] = probs.to(weight.dtype) @ weight
        ctx.save_for_backward(grad if grad is not None else hidden.new_empty(0))
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grad,) = ctx.saved_tensors
        # A 0-dim fp32 factor keeps the bf16 gradient's dtype and is applied at full precision.
        return grad * grad_output, None, None


def hidden_state_path(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.Tensor] | None:
    """(decoder, frozen output weight) when the loss can skip the logits, else None.

    `model` is the training model (PEFT-wrapped or not, not DDP-wrapped: DDP needs its own
    forward to run). None for families with a non-linear head, an untied trained head or a head
    with a bias or an adapter.
    """
    unwrap: Any = getattr(model, "get_base_model", None)
    base: Any = unwrap() if callable(unwrap) else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in _PLAIN_HEAD_MODELS:
        return None
    embeddings: Any = getattr(base, "get_output_embeddings", None)
    head: Any = embeddings() if callable(embeddings) else None
    decoder: Any = getattr(base, "model", None)
    if type(head) is not torch.nn.Linear or getattr(head, "bias", None) is not None:
        return None
    if decoder is None:
        return None
    weight: torch.Tensor = head.weight
    return None if weight.requires_grad else (decoder, weight)


def chunked_causal_lm_loss(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, count: int
) -> torch.Tensor:
    """Mean next-token cross-entropy over the `count` labelled tokens (labels unshifted).

    Token t predicts label t + 1, as in `encoding.batch_loss`; `count` comes from the host so
    that no step waits for the device to count.
    """
    shifted = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), IGNORE_INDEX)], 1)
    flat = hidden.reshape(-1, hidden.shape[-1])
    total = _LinearCrossEntropy.apply(flat, weight, shifted.reshape(-1))
    return total / max(count, 1)  # type: ignore[no-any-return]
