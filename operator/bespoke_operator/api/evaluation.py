"""`spec.evaluation`: the gates, champion delta and fairness limits a candidate must clear."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bespoke_operator.api._base import (
    AT_MOST_ONE,
    ApiModel,
    Decimal,
    SignedDecimal,
    parse_decimal,
    section,
)
from bespoke_operator.api.rules import Rule, raise_violations, schema_rules
from bespoke_operator.api.tasks import SHARE_METRICS, MetricName

__all__ = [
    "ChampionDelta",
    "Evaluation",
    "FairnessLimits",
    "Gate",
]


_SHARES_CEL: Final = "[" + ", ".join(f"'{m}'" for m in SHARE_METRICS) + "]"

_GATE_BOUNDED: Rule[Gate] = Rule(
    cel="has(self.min) || has(self.max)",
    message="a gate needs `min`, `max` or both: without either it checks nothing",
    field_path=".min",
    check=lambda gate: gate.min is not None or gate.max is not None,
)
_GATE_ORDERED: Rule[Gate] = Rule(
    cel="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",
    message="a gate's `min` must not be above its `max`: no value could pass",
    field_path=".max",
    check=lambda gate: (
        gate.min is None or gate.max is None or parse_decimal(gate.min) <= parse_decimal(gate.max)
    ),
)
_GATE_SHARE_REACHABLE: Rule[Gate] = Rule(
    cel=f"!has(self.min) || !(self.metric in {_SHARES_CEL}) || double(self.min) <= 1.0",
    message=f"`min` of {', '.join(SHARE_METRICS)} must be at most 1: these metrics are "
    'shares, e.g. "0.85" rather than "85"',
    field_path=".min",
    check=lambda gate: (
        gate.min is None or gate.metric not in SHARE_METRICS or parse_decimal(gate.min) <= 1.0
    ),
)
_GATE_RULES: Final = (_GATE_BOUNDED, _GATE_ORDERED, _GATE_SHARE_REACHABLE)


class Gate(ApiModel):
    """An absolute threshold the candidate's test metric must meet (`min`, `max` or both)."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(*(rule.as_crd_validation() for rule in _GATE_RULES))
    )

    metric: MetricName = Field(description="Metric the gate reads.")
    min: Decimal | None = Field(default=None, description="Lowest acceptable value, as a string.")
    max: Decimal | None = Field(default=None, description="Highest acceptable value, as a string.")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Gate:
        raise_violations(self, _GATE_RULES, info)
        return self


def _can_both_pass(low: Gate, high: Gate) -> bool:
    """Whether a value can meet `low`'s min and `high`'s max (always, for different metrics)."""
    return (
        low == high  # one gate's own bounds are `_GATE_ORDERED`'s to judge
        or low.metric != high.metric
        or low.min is None
        or high.max is None
        or parse_decimal(low.min) <= parse_decimal(high.max)
    )


_GATES_SATISFIABLE: Rule[Evaluation] = Rule(
    cel="!has(self.gates) || self.gates.all(a, self.gates.all(b, a == b || a.metric != b.metric "
    "|| !has(a.min) || !has(b.max) || double(a.min) <= double(b.max)))",
    message="two gates on the same metric can never both pass: one's `min` is above the "
    "other's `max` — merge them into one gate with a `min` at or below its `max`",
    field_path=".gates",
    check=lambda evaluation: all(
        _can_both_pass(a, b) for a in evaluation.gates for b in evaluation.gates
    ),
)


class ChampionDelta(ApiModel):
    """The candidate must beat the production version on the same held-out data."""

    metric: MetricName = Field(description="Metric compared; lower-is-better metrics are handled.")
    min_improvement: SignedDecimal = Field(
        default="0.0",
        description="How much better than production the candidate must be, as a string. "
        "Negative allows a bounded regression.",
    )


class FairnessLimits(ApiModel):
    """Limits from the fairness audit over dataset.sensitiveColumn."""

    max_demographic_parity_difference: Decimal | None = Field(
        default=None,
        description="Largest allowed gap in positive-prediction rate between groups (0 to 1).",
        json_schema_extra=AT_MOST_ONE.schema,
    )
    max_equalized_odds_difference: Decimal | None = Field(
        default=None,
        description="Largest allowed gap in true/false-positive rates between groups (0 to 1).",
        json_schema_extra=AT_MOST_ONE.schema,
    )
    min_worst_group_accuracy: Decimal | None = Field(
        default=None,
        description="Lowest allowed accuracy of any group (0 to 1).",
        json_schema_extra=AT_MOST_ONE.schema,
    )

    _shares = field_validator(
        "max_demographic_parity_difference",
        "max_equalized_odds_difference",
        "min_worst_group_accuracy",
    )(AT_MOST_ONE.check)

    def any_set(self) -> bool:
        """Whether any limit is declared."""
        return any(
            v is not None
            for v in (
                self.max_demographic_parity_difference,
                self.max_equalized_odds_difference,
                self.min_worst_group_accuracy,
            )
        )


class Evaluation(ApiModel):
    """What a candidate must show before it is promoted."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(_GATES_SATISFIABLE.as_crd_validation())
    )

    metrics: list[MetricName] = Field(
        default_factory=list,
        max_length=16,
        description="Extra metrics to report. The task's standard metrics are always computed.",
    )
    gates: list[Gate] = Field(
        default_factory=list, max_length=32, description="Absolute thresholds on test metrics."
    )
    champion_delta: ChampionDelta | None = Field(
        default=None,
        description="Required improvement over the production version. Ignored for the first "
        "version.",
    )
    fairness: FairnessLimits = section(FairnessLimits, "Fairness audit limits.")
    require_approval: bool = Field(
        default=False,
        description="Hold a passing candidate in AwaitingApproval until a person approves it: "
        "its number in approvedVersions (an approval in Git), or the annotation "
        "bespoke.dev/approved=true on the ModelVersion (an approval by RBAC: `patch` on "
        "modelversions, which the aggregated edit role grants).",
    )
    approved_versions: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        max_length=64,
        description="Versions approved for production, as the annotation approves them: a "
        "listed version that passes its gates is promoted, one awaiting approval is promoted "
        "now. Approves only; it never serves a version that failed its gates "
        "(serving.pinnedVersion is the override for that).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Evaluation:
        raise_violations(self, [_GATES_SATISFIABLE], info)
        return self
