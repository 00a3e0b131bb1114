"""Metrics computed by hand on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from bespoke_trainer.metrics import (
    classification_metrics,
    exact_match,
    expected_calibration_error,
    fairness_audit,
    token_f1,
)


def test_perfectly_calibrated_confidence_has_zero_ece() -> None:
    # Confidence 0.75 in one bin and 3 of 4 correct: |0.75 - 0.75| = 0.
    probs = np.array([[0.75, 0.25]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_overconfident_model_has_the_gap_as_ece() -> None:
    probs = np.array([[0.95, 0.05]] * 2 + [[0.55, 0.45]] * 2)
    labels = np.array([0, 1, 0, 0])
    # Bin 0.9-1.0: accuracy 0.5, confidence 0.95; bin 0.5-0.6: accuracy 1, confidence 0.55.
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_classification_metrics_match_hand_counts() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    m = classification_metrics(probs, labels, ["neg", "pos"], eval_loss=0.5)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusionMatrix"]["matrix"] == [[2, 0], [1, 1]]
    assert m["perClass"]["neg"]["precision"] == pytest.approx(2 / 3)
    assert m["perClass"]["pos"]["recall"] == pytest.approx(0.5)
    f1_neg, f1_pos = 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5
    assert m["macroF1"] == pytest.approx((f1_neg + f1_pos) / 2)
    assert m["evalLoss"] == 0.5


def test_fairness_audit_on_a_planted_gap() -> None:
    groups = np.array(["a"] * 4 + ["b"] * 4)
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 1, 0, 0])
    audit = fairness_audit(pred, labels, groups, ["0", "1"])
    # Selection of class 1: a 3/4, b 1/4.
    assert audit["demographicParityDifference"] == pytest.approx(0.5)
    # TPR of class 1: a 1.0, b 0.5; FPR of class 1: a 0.5, b 0.0.
    assert audit["equalizedOddsDifference"] == pytest.approx(0.5)
    assert audit["worstGroupAccuracy"] == pytest.approx(0.75)
    assert audit["perGroup"]["b"]["count"] == 4


def test_generation_overlap_metrics() -> None:
    assert exact_match("The cat.", "the cat") == 1.0
    assert exact_match("a cat", "the cat") == 0.0
    assert token_f1("the red cat", "the cat") == pytest.approx(0.8)
    assert token_f1("", "cat") == 0.0
