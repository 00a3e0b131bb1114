"""The operator's metrics count what the lifecycle events say happened."""

from __future__ import annotations

from prometheus_client import generate_latest

from bespoke_operator.api import ModelCustomizationStatus
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.reconcile import Event


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_events_become_outcome_promotion_rollback_and_retrain_counts() -> None:
    metrics = OperatorMetrics()
    metrics.observe_events(
        "ml",
        "sentiment",
        [
            Event("Normal", "Promoted", "v1 promoted"),
            Event("Warning", "Rejected", "v2 rejected"),
            Event("Warning", "RolledBack", "v3 rolled back"),
            Event("Normal", "RetrainingStarted", "v4"),
            Event("Normal", "Trained", "not an outcome"),
        ],
    )
    labels = {"namespace": "ml", "customization": "sentiment"}
    assert _value(metrics, "bespoke_versions_total", **labels, outcome="Promoted") == 1
    assert _value(metrics, "bespoke_versions_total", **labels, outcome="Rejected") == 1
    assert _value(metrics, "bespoke_promotions_total", **labels) == 1
    assert _value(metrics, "bespoke_rollbacks_total", **labels) == 1
    assert _value(metrics, "bespoke_drift_retrains_total", **labels) == 1


def test_reconcile_results_and_production_version_are_exported() -> None:
    metrics = OperatorMetrics()
    metrics.observe_reconcile("success", 0.02)
    metrics.observe_reconcile("temporary", 0.5)
    status = ModelCustomizationStatus(production_version=3, headline_metric="accuracy=0.91")
    metrics.observe_status("ml", "sentiment", status)
    assert _value(metrics, "bespoke_reconcile_total", result="success") == 1
    assert _value(metrics, "bespoke_reconcile_duration_seconds_count", result="temporary") == 1
    assert (
        _value(metrics, "bespoke_production_version", namespace="ml", customization="sentiment")
        == 3
    )
    version_metric = _value(
        metrics,
        "bespoke_version_metric",
        namespace="ml",
        customization="sentiment",
        version="3",
        metric="accuracy",
    )
    assert version_metric == 0.91
    text = generate_latest(metrics.registry).decode()
    assert "bespoke_reconcile_duration_seconds_bucket" in text


def test_training_duration_is_observed_for_versions_finished_in_the_pass() -> None:
    from tests.unit.reconcile.world import InMemoryWorld, customization

    world = InMemoryWorld(customization())
    world.reconcile()
    world.tick(600)
    world.finish(1, accuracy=0.9, macroF1=0.9)
    decision = world.reconcile()
    metrics = OperatorMetrics()
    metrics.observe_decision("ml", "sentiment", decision)
    labels = {"namespace": "ml", "customization": "sentiment"}
    assert _value(metrics, "bespoke_training_duration_seconds_sum", **labels) == 600
    assert _value(metrics, "bespoke_versions_total", **labels, outcome="Promoted") == 1


def test_degraded_production_is_a_gauge_that_returns_to_zero() -> None:
    from tests.unit.reconcile.world import InMemoryWorld, customization

    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, accuracy=0.93, macroF1=0.92)
    world.reconcile()
    world.become_available()
    world.reconcile()
    metrics = OperatorMetrics()
    labels = {"namespace": "ml", "customization": "sentiment"}
    world.outage()
    metrics.observe_status("ml", "sentiment", world.reconcile().status)
    assert _value(metrics, "bespoke_serving_degraded", **labels) == 1
    world.become_available()
    metrics.observe_status("ml", "sentiment", world.reconcile().status)
    assert _value(metrics, "bespoke_serving_degraded", **labels) == 0
