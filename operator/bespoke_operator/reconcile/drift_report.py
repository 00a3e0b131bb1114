"""The serving service's `/drift` reply, checked before the core acts on it.

The reply crosses a process (and, in a cluster, a network) boundary, so it is read like any
input: a reply of the wrong shape (a list, a mapping where a number belongs, NaN, a share above
one, a naive timestamp) is logged and ignored, and the reconcile goes on as if no reading had
come. One bad reply must never stop the periodic reconcile of a customization.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DriftReport", "drift_report"]

_log = logging.getLogger(__name__)

#: Most drifted feature names kept from one reply (the status keeps fewer).
_MAX_FEATURES: Final = 256


@dataclass(frozen=True)
class DriftReport:
    """The `/drift` reading of the serving service."""

    version: int
    checked_at: datetime
    drift_share: float
    dataset_drift: bool
    window_rows: int = 0
    drifted_features: tuple[str, ...] = ()


class _Reply(BaseModel):
    """The fields of the reply the operator reads; the rest is the monitor's business."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    version: int = Field(ge=1, strict=True)
    checked_at: AwareDatetime | None = Field(alias="checkedAt")
    drift_share: float = Field(default=0.0, alias="driftShare", ge=0.0, le=1.0, allow_inf_nan=False)
    dataset_drift: bool = Field(default=False, alias="datasetDrift", strict=True)
    window_rows: int = Field(default=0, alias="windowRows", ge=0, strict=True)
    drifted_features: list[str] = Field(
        default_factory=list, alias="driftedFeatures", max_length=_MAX_FEATURES, strict=True
    )


def drift_report(payload: object) -> DriftReport | None:
    """The reading in a `/drift` reply; None before the first reading or for a malformed reply
    (which is logged, naming what is wrong, and otherwise ignored)."""
    try:
        reply = _Reply.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'reply'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        _log.warning("Ignoring a malformed /drift reply (%s)", problems)
        return None
    if reply.checked_at is None:
        return None
    return DriftReport(
        version=reply.version,
        checked_at=reply.checked_at,
        drift_share=reply.drift_share,
        dataset_drift=reply.dataset_drift,
        window_rows=reply.window_rows,
        drifted_features=tuple(reply.drifted_features),
    )
