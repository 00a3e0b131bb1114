"""The operator's Prometheus metrics, served on its own `/metrics` endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from bespoke_operator.api import ModelCustomization, ModelCustomizationStatus
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


# The conditions exported as `bespoke_customization_condition` (the ones alerts and GitOps read).
_CONDITIONS: Final = ("Ready", "Reconciling", "Stalled", "Degraded", "Training")

_Key = tuple[str, str]


class OperatorMetrics:
    """Reconcile counters and durations, version outcomes, promotions, rollbacks, retrains.

    Every series labelled with a customization lives as long as the customization: `forget`
    removes them all when it is deleted, and a version's `bespoke_version_metric` series goes
    when another version takes production. A series left behind would keep alerts and
    dashboards reporting on things that no longer exist.
    """

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
        self.production_version = Gauge(
            "bespoke_production_version", "Version in production", labels, registry=self.registry
        )
        self.version_metric = Gauge(
            "bespoke_version_metric",
            "Headline test metric of the production version",
            [*labels, "version", "metric"],
            registry=self.registry,
        )
        self.serving_replicas = Gauge(
            "bespoke_serving_expected_replicas",
            "Serving pods the spec asks for the production version (0: serving off, none "
            "promoted, or 0 replicas); what serving alerts compare `up` against",
            labels,
            registry=self.registry,
        )
        self.condition = Gauge(
            "bespoke_customization_condition",
            "1 when the customization's condition of this type is True, else 0",
            [*labels, "type"],
            registry=self.registry,
        )
        # (namespace, customization) -> every labelled series exported for it, to remove them.
        self._series: dict[_Key, set[tuple[MetricWrapperBase, tuple[str, ...]]]] = {}

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
                self._child(self.training_seconds, namespace, customization).observe(seconds)

    def observe_events(self, namespace: str, customization: str, events: Iterable[Event]) -> None:
        """Counts the lifecycle transitions a pass emitted."""
        for event in events:
            outcome = _OUTCOMES.get(event.reason)
            if outcome is not None:
                self._child(self.versions, namespace, customization, outcome).inc()
            if event.reason in ("Promoted", "Approved"):
                self._child(self.promotions, namespace, customization).inc()
            elif event.reason == "RolledBack":
                self._child(self.rollbacks, namespace, customization).inc()
            elif event.reason == "RetrainingStarted":
                self._child(self.drift_retrains, namespace, customization).inc()

    def observe_status(
        self,
        namespace: str,
        customization: str,
        status: ModelCustomizationStatus,
        resource: ModelCustomization | None = None,
    ) -> None:
        """Sets the gauges from a new status (and the spec it was reconciled from, if valid).

        Also starts the customization's counters at 0 (idempotent): a series born at 1 shows no
        `increase()`, so alerts on the first failure, rejection or rollback would miss it.
        """
        self._start_counters(namespace, customization)
        truths = {c.type: c.status == "True" for c in status.conditions}
        for kind in _CONDITIONS:
            if kind in truths:
                self._child(self.condition, namespace, customization, kind).set(truths[kind])
            else:
                self._remove(self.condition, namespace, customization, kind)
        version = status.production_version
        if resource is not None:
            serving = resource.spec.serving
            expected = serving.replicas if serving.enabled and version is not None else 0
            self._child(self.serving_replicas, namespace, customization).set(expected)
        headline: tuple[str, ...] | None = None
        if version is not None and status.headline_metric and "=" in status.headline_metric:
            name, _, value = status.headline_metric.partition("=")
            headline = (namespace, customization, str(version), name)
            self._child(self.version_metric, *headline).set(float(value))
        # Retired versions (and a renamed headline metric) leave the gauge with their series.
        for family, values in list(self._series.get((namespace, customization), ())):
            if family is self.version_metric and values != headline:
                self._remove(family, *values)
        if version is None:
            self._remove(self.production_version, namespace, customization)
        else:
            self._child(self.production_version, namespace, customization).set(version)

    def forget(self, namespace: str, customization: str) -> None:
        """Removes every series of a deleted customization."""
        for metric, values in self._series.pop((namespace, customization), set()):
            metric.remove(*values)

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, remembered under its customization for `forget`."""
        self._series.setdefault((values[0], values[1]), set()).add((metric, values))
        return metric.labels(*values)

    def _remove(self, metric: MetricWrapperBase, *values: str) -> None:
        series = self._series.get((values[0], values[1]), set())
        if (metric, values) in series:
            series.discard((metric, values))
            metric.remove(*values)

    def _start_counters(self, namespace: str, customization: str) -> None:
        for outcome in sorted(set(_OUTCOMES.values())):
            self._child(self.versions, namespace, customization, outcome)
        for counter in (self.promotions, self.rollbacks, self.drift_retrains):
            self._child(counter, namespace, customization)
