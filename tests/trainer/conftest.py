"""Fixtures for trainer tests: tiny random models and tokenizers built here, config factory."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from tests import tiny_models
from trainer_helpers import ConfigFactory, build_config, save_tokenizer


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT encoder (no head) with a word-level tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    tok = save_tokenizer(directory, causal=False)
    tiny_models.tiny_bert(len(tok), pad_token_id=tok.pad_token_id).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama causal LM with a word-level tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    tok = save_tokenizer(directory, causal=True)
    model = tiny_models.tiny_causal_lm(
        len(tok),
        num_attention_heads=2,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.cls_token_id,
    )
    model.save_pretrained(str(directory))
    return directory


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    """Build a config dict with small, fast defaults; keyword sections override them."""
    return functools.partial(build_config, tmp_path)
