"""The operator's metrics count what the lifecycle events say happened."""

from __future__ import annotations

from prometheus_client import generate_latest

from bespoke_operator.api import Condition, ModelCustomization, ModelCustomizationStatus
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.reconcile import Decision, Event


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
    from tests.operator.unit.reconcile.world import InMemoryWorld, customization

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


def _condition(kind: str, status: str, reason: str) -> Condition:
    return Condition.model_validate(
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    )


def _series(
    metrics: OperatorMetrics, customization: str
) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.labels.get("customization") == customization
    }


def _resource(**spec_changes: object) -> ModelCustomization:
    from tests.operator.unit.reconcile.world import customization

    return ModelCustomization.model_validate(customization(**spec_changes))


def test_a_promotion_removes_the_retired_versions_metric_series() -> None:
    metrics = OperatorMetrics()
    labels = {"namespace": "ml", "customization": "sentiment", "metric": "accuracy"}
    v1 = ModelCustomizationStatus(production_version=1, headline_metric="accuracy=0.8")
    metrics.observe_status("ml", "sentiment", v1)
    assert _value(metrics, "bespoke_version_metric", **labels, version="1") == 0.8
    v2 = ModelCustomizationStatus(production_version=2, headline_metric="accuracy=0.9")
    metrics.observe_status("ml", "sentiment", v2)
    assert _value(metrics, "bespoke_version_metric", **labels, version="1") is None
    assert _value(metrics, "bespoke_version_metric", **labels, version="2") == 0.9


def test_a_deleted_customization_leaves_no_series_and_others_keep_theirs() -> None:
    metrics = OperatorMetrics()
    status = ModelCustomizationStatus(
        production_version=1,
        headline_metric="accuracy=0.8",
        conditions=[_condition("Ready", "True", "Serving")],
    )
    for name in ("sentiment", "tickets"):
        metrics.observe_status("ml", name, status, _resource())
        metrics.observe_events("ml", name, [Event("Normal", "Promoted", "v1 promoted")])
    metrics.observe_decision(
        "ml", "sentiment", _finished_decision()
    )  # a training-duration histogram too
    assert any(name.startswith("bespoke_training") for name, _ in _series(metrics, "sentiment"))
    kept = _series(metrics, "tickets")
    metrics.forget("ml", "sentiment")
    assert _series(metrics, "sentiment") == set()
    assert _series(metrics, "tickets") == kept
    # Created again under the same name: its counters start again at 0.
    metrics.observe_status("ml", "sentiment", ModelCustomizationStatus())
    labels = {"namespace": "ml", "customization": "sentiment"}
    assert _value(metrics, "bespoke_promotions_total", **labels) == 0


def _finished_decision() -> Decision:
    from tests.operator.unit.reconcile.world import InMemoryWorld, customization

    world = InMemoryWorld(customization())
    world.reconcile()
    world.tick(600)
    world.finish(1, accuracy=0.9, macroF1=0.9)
    return world.reconcile()


def test_expected_serving_replicas_follow_the_spec_and_the_production_version() -> None:
    metrics = OperatorMetrics()
    labels = {"namespace": "ml", "customization": "sentiment"}
    promoted = ModelCustomizationStatus(production_version=2)
    cases = [
        (promoted, _resource(serving__replicas=3), 3),
        (promoted, _resource(serving__enabled=False), 0),
        (promoted, _resource(serving__replicas=0), 0),
        (ModelCustomizationStatus(), _resource(serving__replicas=3), 0),
    ]
    for status, resource, expected in cases:
        metrics.observe_status("ml", "sentiment", status, resource)
        assert _value(metrics, "bespoke_serving_expected_replicas", **labels) == expected


def test_conditions_are_exported_as_one_and_zero_and_dropped_when_gone() -> None:
    metrics = OperatorMetrics()
    labels = {"namespace": "ml", "customization": "sentiment"}
    stalled = ModelCustomizationStatus(
        conditions=[
            _condition("Ready", "False", "InvalidSpec"),
            _condition("Stalled", "True", "InvalidSpec"),
        ]
    )
    metrics.observe_status("ml", "sentiment", stalled)
    assert _value(metrics, "bespoke_customization_condition", **labels, type="Stalled") == 1
    assert _value(metrics, "bespoke_customization_condition", **labels, type="Ready") == 0
    ready = ModelCustomizationStatus(conditions=[_condition("Ready", "True", "Serving")])
    metrics.observe_status("ml", "sentiment", ready)
    assert _value(metrics, "bespoke_customization_condition", **labels, type="Stalled") is None
    assert _value(metrics, "bespoke_customization_condition", **labels, type="Ready") == 1


def test_degraded_production_is_a_condition_series_that_returns_to_zero() -> None:
    from tests.operator.unit.reconcile.world import InMemoryWorld, customization

    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, accuracy=0.93, macroF1=0.92)
    world.reconcile()
    world.become_available()
    world.reconcile()
    metrics = OperatorMetrics()
    labels = {"namespace": "ml", "customization": "sentiment", "type": "Degraded"}
    world.outage()
    metrics.observe_status("ml", "sentiment", world.reconcile().status)
    assert _value(metrics, "bespoke_customization_condition", **labels) == 1
    world.become_available()
    metrics.observe_status("ml", "sentiment", world.reconcile().status)
    assert _value(metrics, "bespoke_customization_condition", **labels) == 0
