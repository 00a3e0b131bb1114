"""Generates the support-tickets example data: seeded, varied, with a drifted stream.

    python examples/support-tickets/generate.py   # rewrites data/ and traffic/ next to it

Six categories. Tickets are composed from openers, per-category requests with slots (products,
amounts, order numbers, features), optional context sentences, and closers, then roughened with
typos, casing and punctuation noise, so lengths and phrasing vary. The drifted stream talks about
products and features that did not exist at training time, in a different class mix.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
CATEGORIES = ("billing", "shipping", "technical", "account", "returns", "feedback")

PRODUCTS = [
    "Aero blender",
    "Lumen desk lamp",
    "Trail backpack",
    "Pixel tablet",
    "Echo speaker",
    "Flux kettle",
    "Nova headphones",
    "Orbit smartwatch",
    "Cedar bookshelf",
    "Breeze fan",
]
NEW_PRODUCTS = [
    "Quasar drone",
    "HoloLens visor",
    "Zephyr e-scooter",
    "Mosaic VR kit",
    "Photon solar charger",
    "Vega robot vacuum",
    "Kinetic smart ring",
]
FEATURES = [
    "the app",
    "bluetooth pairing",
    "the firmware update",
    "wifi setup",
    "the battery",
    "the touchscreen",
    "voice control",
    "the charging cable",
]
NEW_FEATURES = [
    "the AI assistant",
    "crypto checkout",
    "the AR overlay",
    "geofencing",
    "the subscription bundle",
    "NFC unlock",
    "the mesh network",
]

OPENERS = [
    "Hi,",
    "Hello team,",
    "Hey,",
    "Good morning,",
    "Hi there!",
    "Dear support,",
    "",
    "",
    "Urgent:",
    "Quick question -",
]
CLOSERS = [
    "Thanks.",
    "Thank you!",
    "Please help.",
    "Regards.",
    "Appreciate it.",
    "",
    "",
    "Waiting for your reply.",
    "Cheers",
]
CONTEXT = [
    "I have been a customer for {years} years.",
    "This is the second time I am writing about this.",
    "My order number is {order}.",
    "I already tried restarting everything.",
    "I bought it as a gift for my {relative}.",
    "Your chat bot could not help me.",
    "I need this sorted before the weekend.",
]

REQUESTS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {product} order.",
        "Why is there an extra fee of ${amount} on my invoice?",
        "My credit card was billed ${amount} but I cancelled the subscription.",
        "Can I get a refund of the ${amount} overcharge?",
        "The invoice for order {order} shows the wrong amount.",
        "Please explain the charge of ${amount} on my statement.",
        "I want to update my payment method, the card on file expired.",
    ],
    "shipping": [
        "My {product} has not arrived yet, tracking says in transit for a week.",
        "Where is my package? Order {order} was supposed to arrive {day}.",
        "The courier left my {product} at the wrong address.",
        "Can you ship order {order} express instead of standard delivery?",
        "Tracking number for my {product} does not work.",
        "Delivery was delayed again, it has been {days} days.",
        "Do you ship to Canada and how long does delivery take?",
    ],
    "technical": [
        "My {product} keeps disconnecting, {feature} stops working.",
        "After the update {feature} on my {product} is broken.",
        "The {product} will not turn on anymore.",
        "{feature} crashes every time I open it on my {product}.",
        "Error code E{code} shows up when I use {feature}.",
        "How do I reset my {product} to factory settings? {feature} is stuck.",
        "The {product} overheats after a few minutes of use.",
    ],
    "account": [
        "I cannot log in to my account, the password reset email never comes.",
        "Please change the email address on my account.",
        "How do I delete my account and all my data?",
        "My account got locked after too many login attempts.",
        "I want to merge my two accounts into one.",
        "Two factor authentication codes are not accepted.",
        "Someone else may have accessed my account, please secure it.",
    ],
    "returns": [
        "I want to return the {product}, it does not fit my needs.",
        "How do I send back order {order} for a replacement?",
        "The {product} arrived damaged, I want to exchange it.",
        "Is the return window still open for my {product} bought {days} days ago?",
        "Please send me a return label for the {product}.",
        "I returned the {product} two weeks ago but have no confirmation.",
        "Can I exchange the {product} for a different colour?",
    ],
    "feedback": [
        "Just wanted to say the {product} is fantastic, great job.",
        "Suggestion: add a dark mode to {feature}.",
        "Your customer service was really helpful last time, thanks.",
        "The packaging of the {product} was excessive, please use less plastic.",
        "I love the design of the {product} but {feature} could be faster.",
        "It would be great if the {product} came in more colours.",
        "Five stars for the {product}, would recommend to friends.",
    ],
}

NEW_REQUESTS: dict[str, list[str]] = {
    "technical": [
        "{feature} on my {product} drains the battery overnight since firmware v{code}.",
        "The {product} lost its connection to {feature} mid flight.",
        "{feature} keeps hallucinating wrong answers on the {product}.",
    ],
    "billing": [
        "{feature} charged me {amount} tokens twice for the {product}.",
        "The {product} subscription renewed at a higher tier without asking.",
    ],
    "account": ["My {product} is not linked to my profile after the {feature} migration."],
}

RELATIVES = ["mother", "son", "partner", "colleague", "grandfather"]
DAYS = ["yesterday", "on Monday", "last Friday", "two days ago"]


def _fill(
    template: str, rng: random.Random, products: Sequence[str], features: Sequence[str]
) -> str:
    return template.format(
        product=rng.choice(products),
        feature=rng.choice(features),
        amount=f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
        order=f"#{rng.randint(100000, 999999)}",
        code=rng.randint(100, 999),
        day=rng.choice(DAYS),
        days=rng.randint(3, 40),
        years=rng.randint(1, 12),
        relative=rng.choice(RELATIVES),
    )


def _typos(text: str, rng: random.Random, rate: float) -> str:
    chars = list(text)
    for i in range(len(chars) - 1):
        if chars[i].isalpha() and rng.random() < rate:
            operation = rng.random()
            if operation < 0.4:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif operation < 0.7:
                chars[i] = ""
            else:
                chars[i] = chars[i] * 2
    return "".join(chars)


def ticket(category: str, rng: random.Random, *, drifted: bool = False) -> str:
    """One ticket text of `category`."""
    products: Sequence[str] = PRODUCTS
    features: Sequence[str] = FEATURES
    templates = REQUESTS[category]
    if drifted:
        products, features = NEW_PRODUCTS, NEW_FEATURES
        templates = templates + NEW_REQUESTS.get(category, []) * 3
    parts = [rng.choice(OPENERS)]
    context = rng.sample(CONTEXT, k=rng.choice([0, 0, 1, 1, 2, 3 if drifted else 1]))
    request = _fill(rng.choice(templates), rng, products, features)
    if rng.random() < 0.5:
        parts += [_fill(c, rng, products, features) for c in context] + [request]
    else:
        parts += [request] + [_fill(c, rng, products, features) for c in context]
    parts.append(rng.choice(CLOSERS))
    text = " ".join(p for p in parts if p)
    text = _typos(text, rng, rate=0.03 if drifted else 0.015)
    style = rng.random()
    if style < 0.08:
        text = text.lower()
    elif style < 0.11:
        text = text.upper()
    return text


def stream(
    n: int, mix: Sequence[float], seed: int, *, drifted: bool = False
) -> list[dict[str, str]]:
    """`n` labelled tickets drawn with class probabilities `mix`."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        category = rng.choices(CATEGORIES, weights=mix)[0]
        rows.append({"text": ticket(category, rng, drifted=drifted), "label": category})
    return rows


TRAIN_MIX = (0.22, 0.2, 0.2, 0.14, 0.14, 0.1)
DRIFT_MIX = (0.3, 0.05, 0.45, 0.12, 0.05, 0.03)


def _write(path: Path, rows: list[dict[str, str]], *, labelled: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row if labelled else {"text": row["text"]}) + "\n")


def main() -> None:
    """Writes every file of the example."""
    _write(HERE / "data" / "train.jsonl", stream(800, TRAIN_MIX, seed=1))
    _write(HERE / "data" / "recent-labelled.jsonl", stream(200, DRIFT_MIX, seed=2, drifted=True))
    _write(HERE / "traffic" / "reference.jsonl", stream(600, TRAIN_MIX, seed=3), labelled=False)
    _write(
        HERE / "traffic" / "drifted.jsonl",
        stream(600, DRIFT_MIX, seed=4, drifted=True),
        labelled=False,
    )


if __name__ == "__main__":
    main()
