"""Evaluation metrics: classification quality, calibration, generation overlap and fairness."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "exact_match",
    "expected_calibration_error",
    "fairness_audit",
    "perplexity",
    "token_f1",
]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width confidence bins: the weighted mean |accuracy - confidence|."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, names: list[str], eval_loss: float
) -> dict[str, Any]:
    """Headline metrics plus per-class precision/recall/F1 and the confusion matrix."""
    k = len(names)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(names):
        tp = float(confusion[i, i])
        predicted = float(confusion[:, i].sum())
        actual = float(confusion[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": actual,
        }
        f1s.append(f1)
    return {
        "accuracy": float((pred == labels).mean()),
        "macroF1": float(np.mean(f1s)),
        "calibrationError": expected_calibration_error(probs, labels),
        "evalLoss": float(eval_loss),
        "perClass": per_class,
        "confusionMatrix": {"labels": names, "matrix": confusion.tolist()},
    }


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised texts are equal (case, punctuation and spacing ignored)."""
    return float(_tokens(prediction) == _tokens(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-tokens F1."""
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def fairness_audit(
    pred: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str]
) -> dict[str, Any]:
    """Per-group metrics, demographic parity and equalized-odds differences, worst group.

    Multi-class generalisation: for each class c, compare P(pred=c | group) across groups
    (parity) and, for true-positive and false-positive rates of c, across groups (odds); the
    difference reported is the largest over classes.
    """
    group_names = sorted({str(g) for g in groups})
    per_group: dict[str, dict[str, Any]] = {}
    parity_gap = 0.0
    odds_gap = 0.0
    for c, _ in enumerate(names):
        selection, tpr, fpr = [], [], []
        for g in group_names:
            mask = groups == g
            selection.append(float((pred[mask] == c).mean()))
            pos = mask & (labels == c)
            neg = mask & (labels != c)
            if pos.any():
                tpr.append(float((pred[pos] == c).mean()))
            if neg.any():
                fpr.append(float((pred[neg] == c).mean()))
        parity_gap = max(parity_gap, max(selection) - min(selection))
        for rates in (tpr, fpr):
            if len(rates) > 1:
                odds_gap = max(odds_gap, max(rates) - min(rates))
    for g in group_names:
        mask = groups == g
        per_group[g] = {
            "count": int(mask.sum()),
            "accuracy": float((pred[mask] == labels[mask]).mean()),
            "selectionRate": {
                name: float((pred[mask] == c).mean()) for c, name in enumerate(names)
            },
        }
    worst = min(v["accuracy"] for v in per_group.values())
    return {
        "demographicParityDifference": parity_gap,
        "equalizedOddsDifference": odds_gap,
        "worstGroupAccuracy": worst,
        "perGroup": per_group,
    }


def perplexity(eval_loss: float) -> float:
    """exp(loss), capped so JSON never has to carry infinity."""
    return float(math.exp(min(eval_loss, 50.0)))
