"""`spec.monitoring`: drift monitoring of production traffic and the retrain policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bespoke_operator.api._base import SHARE_ABOVE_ZERO, ApiModel, Decimal, section
from bespoke_operator.api.dataset import DataSource

__all__ = [
    "Monitoring",
    "OnDrift",
]


class OnDrift(ApiModel):
    """What to do when drift is detected."""

    action: Literal["alert", "retrain"] = Field(
        default="alert",
        description="alert: report it (condition, event, metric). retrain: also train a new "
        "version.",
    )
    cooldown_seconds: int = Field(
        default=3600, ge=0, description="Least time between two drift-triggered retrains."
    )
    max_retrains_per_day: int = Field(
        default=2, ge=0, le=100, description="Most drift-triggered retrains per UTC day."
    )
    dataset: DataSource | None = Field(
        default=None,
        description="Labelled recent data added to the training set of drift-triggered versions.",
    )


class Monitoring(ApiModel):
    """Drift monitoring of production traffic."""

    enabled: bool = Field(default=True, description="Watch production traffic for drift.")
    window_size: int = Field(
        default=1000, ge=10, le=1000000, description="Most recent requests compared."
    )
    interval_seconds: int = Field(
        default=300, ge=5, le=86400, description="How often drift is computed and read."
    )
    method: Literal["auto", "psi", "ks", "wasserstein", "jensenshannon"] = Field(
        default="auto",
        description="Per-feature statistical test (Evidently's stattest); auto picks by type.",
    )
    threshold: Decimal = Field(
        default="0.5",
        description="Share of drifted features (above 0, at most 1) at or above which the "
        "traffic counts as drifted.",
        json_schema_extra=SHARE_ABOVE_ZERO.schema,
    )
    on_drift: OnDrift = section(OnDrift, "Policy when drift is detected.")

    _threshold = field_validator("threshold")(SHARE_ABOVE_ZERO.check)
