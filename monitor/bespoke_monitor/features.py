"""Numeric and categorical features derived from text traffic, the columns drift is measured on."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_FEATURES",
    "EMBEDDINGS_FEATURE",
    "FEATURES",
    "NUMERICAL_FEATURES",
    "text_features",
    "words",
]

# The trainer's vocabulary.json is built with this same tokenization (lowercase `\w+`), so the
# out-of-vocabulary rate measures new words, not a tokenizer mismatch.
_WORD = re.compile(r"\w+")

NUMERICAL_FEATURES = ("textLength", "wordCount", "oovRate", "confidence")
CATEGORICAL_FEATURES = ("predictedLabel",)
# Mean-pooled model embeddings, one feature for the whole vector (when the service captures them).
EMBEDDINGS_FEATURE = "embeddings"
# The bounded set of feature names, used as the `feature` label of the score gauge.
FEATURES = (*NUMERICAL_FEATURES, *CATEGORICAL_FEATURES, EMBEDDINGS_FEATURE)


def words(text: str) -> list[str]:
    """Lowercase words of a text, tokenized exactly as the trainer built its vocabulary."""
    return _WORD.findall(text.lower())


def text_features(
    texts: Sequence[str],
    vocabulary: Collection[str],
    predictions: Sequence[str | None] | None = None,
    confidences: Sequence[float | None] | None = None,
) -> pd.DataFrame:
    """One row per text: length, word count, OOV rate and, when given, prediction and confidence.

    Prediction columns are left out when absent (causal-LM traffic has no label) so that Evidently
    never compares an all-null column.
    """
    vocab = vocabulary if isinstance(vocabulary, (set, frozenset)) else frozenset(vocabulary)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))
    counts = np.empty(len(texts), dtype=np.float64)
    oov = np.empty(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        ws = words(text)
        counts[i] = len(ws)
        # An empty text has no unknown words; 0 keeps the column numeric and finite.
        oov[i] = sum(w not in vocab for w in ws) / len(ws) if ws else 0.0
    frame = pd.DataFrame({"textLength": lengths, "wordCount": counts, "oovRate": oov})
    if predictions is not None and any(p is not None for p in predictions):
        frame["predictedLabel"] = pd.Series(list(predictions), dtype="object").astype(str)
    if confidences is not None and any(c is not None for c in confidences):
        frame["confidence"] = pd.Series(list(confidences), dtype="float64")
    return frame
