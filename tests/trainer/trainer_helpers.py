"""Helpers for trainer tests: example data, planted datasets, tokenizer building, config I/O."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.tiny_models import word_level_tokenizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"

# Words for the planted-bias and overfit datasets, so the tiny tokenizer knows them.
EXTRA_WORDS = (
    "group alpha beta member wrote this review item was good bad fine thing okay "
    "noise token zero one two three four five six seven eight nine"
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a jsonl file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as jsonl and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def corpus() -> list[str]:
    texts = [r["text"] for r in read_jsonl(EXAMPLES / "sentiment" / "train.jsonl")]
    for r in read_jsonl(EXAMPLES / "sft" / "train.jsonl"):
        texts += [r["prompt"], r["response"]]
    return texts + [EXTRA_WORDS] + [str(i) for i in range(200)]


def save_tokenizer(directory: Path, *, causal: bool) -> Any:
    """The word-level tokenizer over the example data, saved into `directory`."""
    fast = word_level_tokenizer(corpus(), causal=causal)
    fast.save_pretrained(str(directory))
    return fast


def sentiment_rows(n_per_label: int | None = None) -> list[dict[str, Any]]:
    """The committed example sentiment data (optionally fewer rows per label)."""
    rows = read_jsonl(EXAMPLES / "sentiment" / "train.jsonl")
    if n_per_label is None:
        return rows
    counts: dict[str, int] = {}
    out = []
    for r in rows:
        if counts.get(r["label"], 0) < n_per_label:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
            out.append(r)
    return out


def planted_bias_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Reviews whose label depends on the group when the text is ambiguous.

    Half the texts carry a clear sentiment word; the rest are ambiguous and labelled positive
    for 90% of group alpha and 10% of group beta, so a model can learn the group word as a
    shortcut.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        group = "alpha" if i % 2 == 0 else "beta"
        if rng.random() < 0.5:
            label = rng.choice(["good", "bad"])
            word = label
        else:
            p_good = 0.9 if group == "alpha" else 0.1
            label = "good" if rng.random() < p_good else "bad"
            word = rng.choice(["fine", "okay", "thing"])
        filler = " ".join(rng.choice(["one", "two", "three", "four", "five"]) for _ in range(3))
        text = f"group {group} member wrote this review item was {word} {filler} {i}"
        rows.append({"text": text, "label": label, "group": group})
    return rows


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    """Write a config dict to a file."""
    path = tmp_path / name
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def summary_of(config: dict[str, Any]) -> dict[str, Any]:
    """The summary a run wrote to its termination-log path."""
    text = Path(config["output"]["terminationLogPath"]).read_text(encoding="utf-8")
    return dict(json.loads(text))


ConfigFactory = Callable[..., dict[str, Any]]


def build_config(
    tmp_path: Path,
    *,
    model: Path,
    train: Path,
    task: str = "text-classification",
    version: int = 1,
    output: Path | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A config dict with small, fast defaults; keyword sections are merged over them."""
    config: dict[str, Any] = {
        "version": version,
        "baseModel": {"uri": str(model)},
        "task": task,
        "dataset": {"train": {"uri": str(train)}},
        "method": {"type": "lora", "lora": {"r": 4, "alpha": 8, "dropout": "0.0"}},
        "training": {
            "epochs": 3,
            "learningRate": "2e-2",
            "batchSize": 16,
            "maxSequenceLength": 48,
            "seed": 7,
            "numThreads": 1,
        },
        "output": {
            "uri": str(output or tmp_path / "storage" / "versions" / f"v{version}"),
            "terminationLogPath": str(tmp_path / f"termination-log-v{version}"),
        },
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def keyword_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Three classes, each signalled by one keyword among filler words (easy for tiny models)."""
    rng = random.Random(seed)
    words = {"positive": "good", "negative": "bad", "neutral": "okay"}
    fillers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "item"]
    rows = []
    for i in range(n):
        label = list(words)[i % 3]
        left = " ".join(rng.choice(fillers) for _ in range(rng.randint(1, 4)))
        right = " ".join(rng.choice(fillers) for _ in range(rng.randint(1, 4)))
        rows.append({"text": f"{left} {words[label]} {right} {i}", "label": label})
    return rows
