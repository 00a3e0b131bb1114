"""Gate evaluation: every gate's value, threshold and verdict, recorded on the version."""

from __future__ import annotations

import math
from collections.abc import Mapping

from bespoke_operator.api import GateResult, ModelCustomizationSpec
from bespoke_operator.api._base import parse_decimal
from bespoke_operator.api.tasks import LOWER_IS_BETTER

__all__ = ["evaluate_gates", "format_number"]


def format_number(value: float) -> str:
    """A metric as the API writes it: a decimal string without float noise."""
    text = f"{value:.6g}"
    return text if "e" in text or "." in text else f"{text}.0"


def evaluate_gates(
    spec: ModelCustomizationSpec,
    metrics: Mapping[str, float],
    fairness: Mapping[str, float],
    champion: Mapping[str, float] | None,
) -> list[GateResult]:
    """Evaluates every declared gate; a metric the trainer did not report fails its gate.

    `champion` holds the production version's metrics on the same held-out data, or None when
    nothing is in production (then the champion delta has nothing to beat and passes).
    """
    results = [
        _threshold(f"{gate.metric}>=", gate.metric, metrics.get(gate.metric), gate.min, True)
        for gate in spec.evaluation.gates
        if gate.min is not None
    ]
    results += [
        _threshold(f"{gate.metric}<=", gate.metric, metrics.get(gate.metric), gate.max, False)
        for gate in spec.evaluation.gates
        if gate.max is not None
    ]
    delta = spec.evaluation.champion_delta
    if delta is not None:
        results.append(_champion(delta.metric, delta.min_improvement, metrics, champion))
    limits = spec.evaluation.fairness
    for name, limit, at_least in (
        ("demographicParityDifference", limits.max_demographic_parity_difference, False),
        ("equalizedOddsDifference", limits.max_equalized_odds_difference, False),
        ("worstGroupAccuracy", limits.min_worst_group_accuracy, True),
    ):
        if limit is not None:
            op = ">=" if at_least else "<="
            results.append(
                _threshold(f"fairness:{name}{op}", name, fairness.get(name), limit, at_least)
            )
    return results


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _threshold(
    name: str, metric: str, value: float | None, threshold: str, at_least: bool
) -> GateResult:
    value = _finite(value)
    if value is None:
        return GateResult(
            name=name,
            metric=metric,
            threshold=threshold,
            passed=False,
            message=f"the trainer reported no finite {metric}",
        )
    limit = parse_decimal(threshold)
    passed = value >= limit if at_least else value <= limit
    op = ">=" if at_least else "<="
    verdict = "meets" if passed else "misses"
    return GateResult(
        name=name,
        metric=metric,
        value=format_number(value),
        threshold=threshold,
        passed=passed,
        message=f"{metric} {format_number(value)} {verdict} {op} {threshold}",
    )


def _champion(
    metric: str,
    min_improvement: str,
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
) -> GateResult:
    name = "championDelta"
    value = _finite(metrics.get(metric))
    if champion is None:
        return GateResult(
            name=name,
            metric=metric,
            value=format_number(value) if value is not None else None,
            threshold=min_improvement,
            passed=True,
            message="no production version yet: nothing to beat",
        )
    best = _finite(champion.get(metric))
    if value is None or best is None:
        return GateResult(
            name=name,
            metric=metric,
            threshold=min_improvement,
            passed=False,
            message=f"{metric} is missing for the candidate or the production version",
        )
    improvement = best - value if metric in LOWER_IS_BETTER else value - best
    passed = improvement >= parse_decimal(min_improvement)
    return GateResult(
        name=name,
        metric=metric,
        value=format_number(improvement),
        threshold=min_improvement,
        passed=passed,
        message=f"{metric} {format_number(value)} vs production {format_number(best)}: "
        f"improvement {improvement:+.6g} {'meets' if passed else 'misses'} >= {min_improvement}",
    )
