"""Load base model + adapter (or full weights) for a version, and run inference on them."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bespoke_serving.version import VersionError, VersionInfo

__all__ = ["BaseLocation", "Classifier", "Generator", "LoadedModel", "Prediction", "load_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The top label of one text and its softmax probability."""

    label: str
    score: float


class Classifier:
    """A sequence classifier with the version's label order."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, info: VersionInfo
    ) -> None:
        model.eval()  # type: ignore[no-untyped-call]
        self.model = model
        self.tokenizer = tokenizer
        self.labels = info.labels
        self.max_length = info.max_sequence_length

    def classify(self, texts: list[str]) -> list[Prediction]:
        """Label and probability for each text, in input order."""
        return self._run(texts, embed=False)[0]

    def classify_with_embeddings(self, texts: list[str]) -> tuple[list[Prediction], np.ndarray]:
        """Predictions and each text's mean-pooled last hidden state, from one forward pass."""
        predictions, embeddings = self._run(texts, embed=True)
        assert embeddings is not None
        return predictions, embeddings

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Mean-pooled last hidden states of many texts, in batches."""
        chunks = [
            self.classify_with_embeddings(texts[i : i + batch_size])[1]
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)

    def _run(self, texts: list[str], embed: bool) -> tuple[list[Prediction], np.ndarray | None]:
        if not texts:
            return [], None
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            output = self.model(**encoded, output_hidden_states=embed)
            embeddings = None
            if embed:
                # Mean over real tokens only: padding must not pull short texts together.
                mask = encoded["attention_mask"].unsqueeze(-1).to(output.hidden_states[-1].dtype)
                summed = (output.hidden_states[-1] * mask).sum(dim=1)
                embeddings = (summed / mask.sum(dim=1).clamp(min=1.0)).float().numpy()
        probabilities = torch.softmax(output.logits.float(), dim=-1)
        scores, indices = probabilities.max(dim=-1)
        predictions = [
            Prediction(self.labels[int(i)], float(s))
            for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]
        return predictions, embeddings


class Generator:
    """A causal LM that continues a prompt within bounded generation parameters."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, info: VersionInfo
    ) -> None:
        model.eval()  # type: ignore[no-untyped-call]
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = info.max_sequence_length
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def generate(self, prompt: str, max_new_tokens: int, temperature: float, top_p: float) -> str:
        """The continuation of `prompt` (without the prompt itself)."""
        encoded = self.tokenizer(
            prompt, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        sample = temperature > 0.0
        with torch.inference_mode():
            output = self.model.generate(  # type: ignore[operator]
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[0, encoded["input_ids"].shape[1] :]
        return str(self.tokenizer.decode(new_tokens, skip_special_tokens=True))


LoadedModel = Classifier | Generator


@dataclass(frozen=True)
class BaseLocation:
    """A local directory, or a hub name (`hf://org/name`) with its pinned revision."""

    path: Path | str
    revision: str | None = None


def load_model(
    version_dir: Path, base: BaseLocation | None, info: VersionInfo, merge: bool
) -> LoadedModel:
    """Build the served model: base + PEFT adapter (merged on request) or full weights."""
    tokenizer = AutoTokenizer.from_pretrained(version_dir / "tokenizer")
    adapter_dir, full_dir = version_dir / "adapter", version_dir / "model"
    if adapter_dir.is_dir():
        if base is None:
            raise VersionError("the version holds an adapter but no base model location resolved")
        model = _peft_model(base, adapter_dir, info, merge)
    elif full_dir.is_dir():
        model = _auto(info, BaseLocation(full_dir))
    else:
        raise VersionError(f"{version_dir} holds neither adapter/ nor model/")
    log.info("Loaded version %d (%s, %s)", info.version, info.task, info.method)
    if info.task == "text-classification":
        return Classifier(model, tokenizer, info)
    return Generator(model, tokenizer, info)


def _auto(info: VersionInfo, where: BaseLocation) -> PreTrainedModel:
    path, revision = where.path, where.revision
    if info.task == "text-classification":
        config = AutoConfig.from_pretrained(
            path,
            revision=revision,
            num_labels=len(info.labels),
            id2label=dict(enumerate(info.labels)),
            label2id={label: i for i, label in enumerate(info.labels)},
        )
        model = AutoModelForSequenceClassification.from_pretrained(
            path, config=config, revision=revision, use_safetensors=True
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(path, revision=revision, use_safetensors=True)
    return model  # type: ignore[no-any-return]


def _peft_model(
    where: BaseLocation, adapter_dir: Path, info: VersionInfo, merge: bool
) -> PreTrainedModel:
    base = _auto(info, where)
    # The adapter carries the trained classifier head (`modules_to_save`), so the randomly
    # initialised head of the base is replaced here.
    with warnings.catch_warnings():
        # PEFT 0.21 still asks transformers 5 for a renamed attribute; harmless, not ours.
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        model = PeftModel.from_pretrained(base, adapter_dir)
    if merge:
        return model.merge_and_unload()  # type: ignore[no-any-return]
    return model  # type: ignore[return-value]
