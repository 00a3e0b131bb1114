"""The operator's Prometheus metrics, served on its own `/metrics` endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bespoke_operator.api import ModelCustomizationStatus
from bespoke_operator.reconcile import Decision, Event, SetVersionStatus

__all__ = ["OperatorMetrics"]

# Event reasons that count versions by outcome (the label values the dashboards use).
_OUTCOMES: Final = {
    "Promoted": "Promoted",
    "Approved": "Promoted",
    "Rejected": "Rejected",
    "TrainingFailed": "Failed",
    "AwaitingApproval": "AwaitingApproval",
}


class OperatorMetrics:
    """Reconcile counters and durations, version outcomes, promotions, rollbacks, retrains."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["namespace", "customization"]
        self.reconciles = Counter(
            "bespoke_reconcile",
            "Reconcile passes by result (success, error, temporary)",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "bespoke_reconcile_duration_seconds",
            "Duration of one reconcile pass",
            ["result"],
            registry=self.registry,
        )
        self.versions = Counter(
            "bespoke_versions",
            "Versions decided, by outcome",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.promotions = Counter(
            "bespoke_promotions", "Versions promoted", labels, registry=self.registry
        )
        self.rollbacks = Counter(
            "bespoke_rollbacks", "Rollouts rolled back", labels, registry=self.registry
        )
        self.drift_retrains = Counter(
            "bespoke_drift_retrains",
            "Versions trained because of drift",
            labels,
            registry=self.registry,
        )
        self.training_seconds = Histogram(
            "bespoke_training_duration_seconds",
            "Trainer wall time of finished versions (start of the first attempt to the decision)",
            labels,
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400),
            registry=self.registry,
        )
        self.degraded = Gauge(
            "bespoke_serving_degraded",
            "1 while the production version is unavailable (condition Degraded), else 0",
            labels,
            registry=self.registry,
        )
        self.production_version = Gauge(
            "bespoke_production_version", "Version in production", labels, registry=self.registry
        )
        self.version_metric = Gauge(
            "bespoke_version_metric",
            "Headline test metric of the production version",
            [*labels, "version", "metric"],
            registry=self.registry,
        )

    def observe_reconcile(self, result: str, seconds: float) -> None:
        """Counts one pass (`success`, `error` or `temporary`) and its duration."""
        self.reconciles.labels(result).inc()
        self.reconcile_seconds.labels(result).observe(seconds)

    def observe_decision(self, namespace: str, customization: str, decision: Decision) -> None:
        """Counts a pass's lifecycle events and the training time of versions it finished."""
        self.observe_events(
            namespace, customization, (a for a in decision.actions if isinstance(a, Event))
        )
        finished = {
            e.version
            for e in decision.actions
            if isinstance(e, Event) and e.reason in ("Trained", "TrainingFailed")
        }
        for action in decision.actions:
            if not isinstance(action, SetVersionStatus) or action.version not in finished:
                continue
            status = action.status
            if status.started_at is not None and status.completed_at is not None:
                seconds = (status.completed_at - status.started_at).total_seconds()
                self.training_seconds.labels(namespace, customization).observe(seconds)

    def observe_events(self, namespace: str, customization: str, events: Iterable[Event]) -> None:
        """Counts the lifecycle transitions a pass emitted."""
        for event in events:
            outcome = _OUTCOMES.get(event.reason)
            if outcome is not None:
                self.versions.labels(namespace, customization, outcome).inc()
            if event.reason in ("Promoted", "Approved"):
                self.promotions.labels(namespace, customization).inc()
            elif event.reason == "RolledBack":
                self.rollbacks.labels(namespace, customization).inc()
            elif event.reason == "RetrainingStarted":
                self.drift_retrains.labels(namespace, customization).inc()

    def observe_status(
        self, namespace: str, customization: str, status: ModelCustomizationStatus
    ) -> None:
        """Sets the production-version gauges from a new status.

        Also starts the customization's counters at 0 (idempotent): a series born at 1 shows no
        `increase()`, so alerts on the first failure, rejection or rollback would miss it.
        """
        self._start_counters(namespace, customization)
        degraded = any(c.type == "Degraded" and c.status == "True" for c in status.conditions)
        self.degraded.labels(namespace, customization).set(1 if degraded else 0)
        version = status.production_version
        if version is None:
            return
        self.production_version.labels(namespace, customization).set(version)
        if status.headline_metric and "=" in status.headline_metric:
            metric, _, value = status.headline_metric.partition("=")
            self.version_metric.labels(namespace, customization, str(version), metric).set(
                float(value)
            )

    def _start_counters(self, namespace: str, customization: str) -> None:
        for outcome in sorted(set(_OUTCOMES.values())):
            self.versions.labels(namespace, customization, outcome)
        for counter in (self.promotions, self.rollbacks, self.drift_retrains):
            counter.labels(namespace, customization)
