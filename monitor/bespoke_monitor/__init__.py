"""Drift monitoring for served versions: text features, Evidently statistics, Prometheus gauges.

The names below load on first use (PEP 562): a process that only reads settings (BentoML's CLI
loading a service definition) does not pay for importing Evidently and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from bespoke_monitor.methods import DriftMethod

if TYPE_CHECKING:
    from bespoke_monitor.drift import DriftResult, compute_drift, drift_between, featurize
    from bespoke_monitor.features import FEATURES, text_features
    from bespoke_monitor.gauges import DriftCollector

__all__ = [
    "FEATURES",
    "DriftCollector",
    "DriftMethod",
    "DriftResult",
    "compute_drift",
    "drift_between",
    "featurize",
    "text_features",
]

_HOMES: Final = {
    "DriftResult": "bespoke_monitor.drift",
    "compute_drift": "bespoke_monitor.drift",
    "drift_between": "bespoke_monitor.drift",
    "featurize": "bespoke_monitor.drift",
    "FEATURES": "bespoke_monitor.features",
    "text_features": "bespoke_monitor.features",
    "DriftCollector": "bespoke_monitor.gauges",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
