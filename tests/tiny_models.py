"""The tiny random models every test tier builds: one home for their shapes and their seed.

A classifier base (BERT encoder, no head) and a causal LM (Llama, or Qwen2 where a test compares
families), each 2 layers of width 32, seeded with 0 so a test that builds one twice gets the same
weights. Callers pass the vocabulary size of their tokenizer and override any config field
(`attn_implementation`, `tie_word_embeddings`, token ids); `word_level_tokenizer` builds a
tokenizer over a corpus the caller names, so the model's vocabulary is exactly the words the test
feeds it. Nothing here downloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

__all__ = ["SEED", "tiny_bert", "tiny_causal_lm", "word_level_tokenizer"]

SEED = 0

_CLASSIFIER_SHAPE: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 128,
}
_CAUSAL_SHAPE: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
}
_CAUSAL_FAMILIES: dict[str, tuple[type[Any], type[PreTrainedModel]]] = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
}


def tiny_bert(vocab_size: int, **overrides: Any) -> BertModel:
    """A seeded, randomly initialised 2-layer BERT encoder (the trainer adds the head)."""
    torch.manual_seed(SEED)
    return BertModel(BertConfig(vocab_size=vocab_size, **{**_CLASSIFIER_SHAPE, **overrides}))


def tiny_causal_lm(vocab_size: int, *, family: str = "llama", **overrides: Any) -> PreTrainedModel:
    """A seeded, randomly initialised 2-layer causal LM with grouped-query attention."""
    if family not in _CAUSAL_FAMILIES:
        raise ValueError(
            f"tiny_causal_lm: family {family!r} is not one of {sorted(_CAUSAL_FAMILIES)}"
        )
    config_class, model_class = _CAUSAL_FAMILIES[family]
    torch.manual_seed(SEED)
    return model_class(config_class(vocab_size=vocab_size, **{**_CAUSAL_SHAPE, **overrides}))


def word_level_tokenizer(corpus: Iterable[str], *, causal: bool) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over `corpus`; `[CLS] text [SEP]` unless `causal`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=specials))
    if not causal:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[
                ("[CLS]", tok.token_to_id("[CLS]")),
                ("[SEP]", tok.token_to_id("[SEP]")),
            ],
        )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        eos_token="[EOS]",
    )
