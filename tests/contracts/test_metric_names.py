"""API ↔ trainer: the metric names gates may name are the ones the trainer computes."""

from __future__ import annotations

import numpy as np

from bespoke_operator.api import tasks as api
from bespoke_trainer import config as trainer
from bespoke_trainer.metrics import classification_metrics, fairness_audit


def test_the_declared_metric_names_agree() -> None:
    assert api.CLASSIFICATION_METRICS == trainer.CLASSIFICATION_METRICS
    assert api.CAUSAL_LM_METRICS == trainer.CAUSAL_LM_METRICS
    assert api.FAIRNESS_METRICS == trainer.FAIRNESS_METRICS


def test_lower_is_better_agrees_for_every_gateable_metric() -> None:
    for metric in {*api.CLASSIFICATION_METRICS, *api.CAUSAL_LM_METRICS}:
        assert trainer.metric_higher_is_better(metric) == (metric not in api.LOWER_IS_BETTER), (
            metric
        )


def test_the_trainer_computes_every_classification_metric_a_gate_may_name() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    computed = classification_metrics(probs, labels, ["a", "b"], eval_loss=0.4)
    assert set(api.CLASSIFICATION_METRICS) <= set(computed)
    groups = np.array(["x", "x", "y", "y"])
    audit = fairness_audit(probs.argmax(axis=1), labels, groups, ["a", "b"])
    assert set(api.FAIRNESS_METRICS) <= set(audit)
