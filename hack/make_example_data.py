"""Generate the small example datasets in examples/data (seeded, so the files are reproducible).

Run: python hack/make_example_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "examples" / "data"

PRODUCTS = [
    "headphones",
    "laptop",
    "coffee maker",
    "phone case",
    "backpack",
    "desk lamp",
    "keyboard",
    "blender",
    "running shoes",
    "water bottle",
    "monitor",
    "vacuum cleaner",
    "tent",
    "jacket",
    "printer",
    "camera",
    "blanket",
    "toaster",
    "smartwatch",
    "office chair",
]
ASPECTS = [
    "battery life",
    "build quality",
    "price",
    "delivery",
    "customer support",
    "design",
    "sound",
    "screen",
    "fit",
    "packaging",
    "setup",
    "instructions",
]
POSITIVE = [
    "excellent",
    "fantastic",
    "great",
    "wonderful",
    "superb",
    "impressive",
    "reliable",
    "delightful",
    "outstanding",
    "solid",
]
NEGATIVE = [
    "terrible",
    "awful",
    "disappointing",
    "poor",
    "flimsy",
    "useless",
    "broken",
    "horrible",
    "frustrating",
    "cheap-feeling",
]
NEUTRAL = [
    "okay",
    "average",
    "fine",
    "acceptable",
    "standard",
    "ordinary",
    "as described",
    "decent enough",
    "unremarkable",
    "adequate",
]
TEMPLATES = {
    "positive": [
        "The {p} is {a}, I love the {x}.",
        "Really {a} {p}; the {x} exceeded my expectations.",
        "I would buy this {p} again, the {x} is {a}.",
        "{A} {x}! My new {p} is worth every penny.",
        "Absolutely happy with the {p}: {a} {x} and it works perfectly.",
        "Highly recommend this {p}, the {x} is simply {a}.",
    ],
    "negative": [
        "The {p} is {a}, I regret buying it because of the {x}.",
        "Really {a} {p}; the {x} let me down.",
        "I want a refund for this {p}, the {x} is {a}.",
        "{A} {x}. My new {p} stopped working after two days.",
        "Very unhappy with the {p}: {a} {x} and it keeps failing.",
        "Do not buy this {p}, the {x} is just {a}.",
    ],
    "neutral": [
        "The {p} is {a}; the {x} is what I expected.",
        "It is an {a} {p}, nothing special about the {x}.",
        "The {x} of this {p} is {a}, neither good nor bad.",
        "{A} {x}. The {p} does the job.",
        "I have no strong feelings about the {p}, the {x} is {a}.",
        "The {p} arrived; the {x} seems {a} so far.",
    ],
}
WORDS = {"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}


def sentiment(rng: random.Random, per_label: int = 150) -> list[dict[str, str]]:
    """Product reviews in three classes with varied templates, products and aspects."""
    rows: list[dict[str, str]] = []
    for label, templates in TEMPLATES.items():
        seen: set[str] = set()
        while len(seen) < per_label:
            word = rng.choice(WORDS[label])
            text = rng.choice(templates).format(
                p=rng.choice(PRODUCTS), a=word, A=word.capitalize(), x=rng.choice(ASPECTS)
            )
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
ANIMALS = ["cat", "dog", "horse", "bird", "fish", "mouse", "lion", "bear"]


def sft(rng: random.Random, n: int = 300) -> list[dict[str, str]]:
    """Short instruction/answer pairs a small model can learn (arithmetic, lists, words)."""
    rows: dict[str, str] = {}
    while len(rows) < n:
        kind = rng.randrange(4)
        if kind == 0:
            a, b = rng.randint(0, 50), rng.randint(0, 50)
            rows[f"What is {a} plus {b}?"] = f"{a} plus {b} is {a + b}."
        elif kind == 1:
            words = rng.sample(COLORS, 3)
            rows[f"Reverse this list: {', '.join(words)}"] = ", ".join(reversed(words))
        elif kind == 2:
            animal = rng.choice(ANIMALS)
            count = rng.randint(2, 9)
            rows[f"Write the word {animal} {count} times."] = " ".join([animal] * count)
        else:
            a, b = rng.randint(10, 99), rng.randint(1, 9)
            rows[f"What is {a} minus {b}?"] = f"{a} minus {b} is {a - b}."
    return [{"prompt": p, "response": r} for p, r in rows.items()]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    """One JSON object per line, stable key order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    """Write examples/data/sentiment/train.jsonl and examples/data/sft/train.jsonl."""
    write_jsonl(ROOT / "sentiment" / "train.jsonl", sentiment(random.Random(7)))
    write_jsonl(ROOT / "sft" / "train.jsonl", sft(random.Random(11)))


if __name__ == "__main__":
    main()
