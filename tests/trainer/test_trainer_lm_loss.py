"""The logit-free causal-LM loss and the packed mask: the same numbers as the plain path."""

from __future__ import annotations

import pytest
import torch
from tests.tiny_models import tiny_causal_lm

from bespoke_trainer import lm_loss
from bespoke_trainer.config import LoraSettings, MethodConfig
from bespoke_trainer.encoding import IGNORE_INDEX, batch_loss
from bespoke_trainer.fastpaths import (
    adapters_to_fp32,
    packed_causal_mask,
    set_adapter_input_casting,
)
from bespoke_trainer.lm_loss import chunked_causal_lm_loss, hidden_state_path
from bespoke_trainer.modeling import LoadedModel, apply_method


def _lora_llama(*, tied: bool = False) -> torch.nn.Module:
    # The default max_position_embeddings (2048) as before: only the rotary cache depends on it.
    base = tiny_causal_lm(97, tie_word_embeddings=tied, max_position_embeddings=2048)
    method = MethodConfig(type="lora", lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    return apply_method(LoadedModel(base, None), "causal-lm", method)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_elements", [97 * 5, 2**27])  # 5 tokens a chunk, or one chunk
def test_chunked_loss_and_gradients_match_the_logits_path(
    monkeypatch: pytest.MonkeyPatch, chunk_elements: int
) -> None:
    monkeypatch.setattr(lm_loss, "_CHUNK_ELEMENTS", chunk_elements)
    model = _lora_llama()
    path = hidden_state_path(model)
    assert path is not None
    decoder, weight = path
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 97, (3, 11), generator=gen)
    labels = ids.clone()
    labels[0, :4] = IGNORE_INDEX  # a prompt
    labels[2, 7:] = IGNORE_INDEX  # padding
    mask = (labels != IGNORE_INDEX) | (torch.arange(11) < 7)
    batch = {"input_ids": ids, "attention_mask": mask.long(), "labels": labels}
    params = [p for p in model.parameters() if p.requires_grad]

    logits = model(input_ids=ids, attention_mask=mask.long())["logits"]
    want, _, count = batch_loss(logits, batch)
    want_grads = torch.autograd.grad(want, params)

    hidden = decoder(input_ids=ids, attention_mask=mask.long())[0]
    got = chunked_causal_lm_loss(hidden, weight, labels, count)
    got_grads = torch.autograd.grad(got, params)

    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_the_hidden_state_path_is_only_taken_for_a_frozen_plain_head() -> None:
    model = _lora_llama()
    assert hidden_state_path(model) is not None
    model.get_base_model().lm_head.weight.requires_grad_(True)  # a trained head needs its grad
    assert hidden_state_path(model) is None
    assert hidden_state_path(torch.nn.Linear(2, 2)) is None  # not a language model


def test_packed_mask_keeps_each_example_to_itself() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0]])  # examples of 3 and 2 tokens, then padding
    mask = packed_causal_mask(positions)[0, 0]
    want = torch.zeros(6, 6, dtype=torch.bool)
    for start, end in ((0, 3), (3, 5), (5, 6)):
        want[start:end, start:end] = torch.ones(end - start, end - start).tril().bool()
    assert torch.equal(mask, want)


def test_adapters_without_input_casting_give_the_same_numbers_under_autocast() -> None:
    # The CUDA layout (bf16 base, fp32 adapters under bf16 autocast), on the CPU.
    model = _lora_llama().to(torch.bfloat16)
    adapters_to_fp32(model)
    ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(5))
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids)["logits"]
        loss = logits.float().logsumexp(-1).mean()
        return loss, torch.autograd.grad(loss, params)

    cast_loss, cast_grads = run()
    assert set_adapter_input_casting(model, False) == 14  # 2 layers × 7 adapted linears
    loss, grads = run()
    set_adapter_input_casting(model, True)
    assert torch.equal(loss, cast_loss)
    for g, w in zip(grads, cast_grads, strict=True):
        assert torch.equal(g, w)
