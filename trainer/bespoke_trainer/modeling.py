"""Load the base model and tokenizer, and wrap it for the chosen method (LoRA, QLoRA, full)."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bespoke_trainer.config import BaseModelConfig, MethodConfig
from bespoke_trainer.errors import InvalidConfigError, ModelLoadError, ModelNotFoundError
from bespoke_trainer.uris import local_path, parse_hub

__all__ = [
    "LoadedModel",
    "apply_method",
    "check_method_supported",
    "load_base",
    "load_version",
    "trainable_state",
]

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready for training or evaluation, with its tokenizer."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase


def check_method_supported(method: MethodConfig) -> None:
    """Fail fast on a method this machine cannot run."""
    if method.type == "qlora" and not torch.cuda.is_available():
        raise InvalidConfigError(
            "`method.type: qlora` needs a CUDA GPU (bitsandbytes 4-bit) and this machine has "
            "none; use `method.type: lora` here or request a GPU in `training.resources`"
        )


def _source(base: BaseModelConfig, cache_dir: Path) -> tuple[str, dict[str, Any]]:
    hub = parse_hub(base.uri)
    if hub is not None:
        return hub.repo_id, {"revision": base.revision}
    try:
        path = local_path(base.uri, cache_dir=cache_dir)
    except FileNotFoundError as exc:  # e.g. no such s3:// prefix
        raise ModelNotFoundError(
            f"cannot fetch base model {base.uri}: {exc} — check baseModel.uri"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot fetch base model {base.uri}: {exc}") from exc
    if not path.is_dir():
        raise ModelNotFoundError(
            f"base model {base.uri} is not a directory ({path}) — check baseModel.uri"
        )
    return str(path), {}


def load_base(
    base: BaseModelConfig,
    task: str,
    method: MethodConfig,
    labels: list[str],
    cache_dir: Path,
    *,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load tokenizer and base model (safetensors only; remote code only when allowed)."""
    name, extra = _source(base, cache_dir)
    common: dict[str, Any] = {"trust_remote_code": base.trust_remote_code, **extra}
    kwargs: dict[str, Any] = {"use_safetensors": True, **common}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if method.type == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **common)
        model: PreTrainedModel
        if task == "text-classification":
            model = AutoModelForSequenceClassification.from_pretrained(
                name,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                **kwargs,
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _load_failure(base.uri, exc) from exc
    if tokenizer.pad_token is None:
        # Causal models often ship without a pad token; padding is masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    log.info("Loaded base model %s (%s parameters)", base.uri, f"{model.num_parameters():,}")
    return LoadedModel(model=model, tokenizer=tokenizer)


@contextlib.contextmanager
def _peft_quiet() -> Iterator[None]:
    # PEFT 0.21 reads `is_gradient_checkpointing`, which transformers 5 deprecates with a
    # FutureWarning on every wrap; nothing for us to act on until PEFT switches names.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def _load_failure(uri: str, exc: BaseException) -> ModelLoadError:
    """A model that is not there fails for good; a download that failed may work next time."""
    message = f"cannot load base model {uri}: {_first_line(exc)}"
    for cause in _chain(exc):
        if isinstance(cause, RepositoryNotFoundError | RevisionNotFoundError):
            return ModelNotFoundError(
                f"{message} — check baseModel.uri and revision, and that the credentials in "
                "storage.secretRef can see the repository"
            )
        if isinstance(cause, LocalEntryNotFoundError) and hub_constants.HF_HUB_OFFLINE:
            # Offline, the cache is all there is: retrying reads the same cache.
            return ModelNotFoundError(
                f"{message} — the Hub is off (HF_HUB_OFFLINE) and the model is not in the "
                "cache: put it there, or point baseModel.uri at a local copy"
            )
    return ModelLoadError(message)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def apply_method(
    loaded: LoadedModel,
    task: str,
    method: MethodConfig,
    *,
    warm_start_dir: Path | None = None,
    gradient_checkpointing: bool = False,
) -> torch.nn.Module:
    """Wrap the base model for training; with `warm_start_dir`, start from that version."""
    model = loaded.model
    if gradient_checkpointing:
        # Non-reentrant checkpointing keeps gradients flowing to adapters when the frozen
        # embeddings produce inputs that do not require grad.
        kwargs = {"use_reentrant": False}
        enable: Any = getattr(model, "activation_checkpointing_enable", None)  # transformers 5
        if enable is not None:
            enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[operator]
    if method.type == "full":
        if warm_start_dir is not None:
            _load_full_weights(model, warm_start_dir / "model")
        return model
    from peft import (
        LoraConfig,
        PeftModel,
        TaskType,
        get_peft_model,
        prepare_model_for_kbit_training,
    )

    if method.type == "qlora":
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    if warm_start_dir is not None:
        try:
            with _peft_quiet():
                peft_model = PeftModel.from_pretrained(
                    model, str(warm_start_dir / "adapter"), is_trainable=True
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(
                f"cannot load warm-start adapter from {warm_start_dir}: {_first_line(exc)}"
            ) from exc
        log.info("Warm start from %s", warm_start_dir)
        return peft_model
    lora = method.lora
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if task == "text-classification" else TaskType.CAUSAL_LM,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or "all-linear",
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
    )
    try:
        with _peft_quiet():
            peft_model = get_peft_model(model, config)
    except ValueError as exc:
        raise InvalidConfigError(f"`method.lora`: {_first_line(exc)}") from exc
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info("LoRA: %s of %s parameters trainable", f"{trainable:,}", f"{total:,}")
    return peft_model


def _load_full_weights(model: torch.nn.Module, weights_dir: Path) -> None:
    from safetensors.torch import load_file

    files = sorted(weights_dir.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"no safetensors weights in {weights_dir}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    model.load_state_dict(state, strict=False)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters being trained (what a checkpoint must hold to resume)."""
    return {
        name: param.detach().cpu().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_version(version_dir: Path, cache_dir: Path) -> tuple[LoadedModel, dict[str, Any]]:
    """Load a finished version (base + adapter, or full weights) for evaluation."""
    try:
        meta = json.loads((version_dir / "bespoke-version.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{version_dir} is not a finished version: {exc}") from exc
    if not (version_dir / "COMPLETE").exists():
        raise ModelLoadError(f"{version_dir} has no COMPLETE marker")
    task = str(meta["task"])
    labels = [str(x) for x in meta.get("labels") or []]
    tokenizer_dir = version_dir / "tokenizer"
    if (version_dir / "model").is_dir():
        base = BaseModelConfig(uri=str(version_dir / "model"))
        loaded = load_base(base, task, MethodConfig(type="full"), labels, cache_dir)
    else:
        bm = meta["baseModel"]
        base = BaseModelConfig(uri=bm["uri"], revision=bm.get("revision"))
        loaded = load_base(base, task, MethodConfig(type="lora"), labels, cache_dir)
        from peft import PeftModel

        try:
            with _peft_quiet():
                loaded.model = PeftModel.from_pretrained(loaded.model, str(version_dir / "adapter"))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load adapter of {version_dir}: {exc}") from exc
    loaded.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if loaded.tokenizer.pad_token is None:
        loaded.tokenizer.pad_token = loaded.tokenizer.eos_token
    loaded.model.eval()
    return loaded, meta
