"""The operator's settings: one typed object, read from the environment once, at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["OperatorSettings"]

_DEFAULT_IMAGE: Final = "ghcr.io/bespoke-dev/bespoke-{component}:0.1.0"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator process is configured with (the chart sets the environment).

    Read by `from_env` when the operator starts, never at import, so a test or an embedding
    process sets the environment (or builds this object) before starting it.
    """

    #: `BESPOKE_TRAINER_IMAGE`: the trainer image when a spec names none (the chart pins the
    #: operator's own release, by tag and optional digest).
    trainer_image: str = _DEFAULT_IMAGE.format(component="trainer")
    #: `BESPOKE_SERVING_IMAGE`: the serving image when `spec.serving.image` is omitted.
    serving_image: str = _DEFAULT_IMAGE.format(component="serving")
    #: `BESPOKE_RECONCILE_INTERVAL_SECONDS`: how often work in flight (a rollout and its
    #: deadline) is checked; also the shortest time between two drift readings' checks.
    reconcile_interval_seconds: float = 30.0
    #: `BESPOKE_RESYNC_INTERVAL_SECONDS`: how often a settled customization is reconciled to heal
    #: a missed event. Default: ten reconcile intervals.
    resync_interval_seconds: float = 300.0
    #: `BESPOKE_METRICS_PORT`: the port of the operator's `/metrics`; 0 turns it off.
    metrics_port: int = 9090
    #: `KUBECONFIG`: the kubeconfig used outside a cluster (in a pod: its ServiceAccount).
    kubeconfig: str | None = None
    #: `BESPOKE_RETRY_BASE_SECONDS`: the first retry delay of a failed pass; it doubles with
    #: every failure in a row of the same customization (full jitter), reset by a success.
    retry_base_seconds: float = 2.0
    #: `BESPOKE_RETRY_CAP_SECONDS`: the longest retry delay, `Retry-After` included.
    retry_cap_seconds: float = 300.0
    #: Seconds before a pass the API refused for good (e.g. a missing RBAC permission) is tried
    #: again: a person has to act first.
    permanent_retry_seconds: float = 60.0
    #: How many periodic reconciles run at once: event-driven ones keep their turn between them.
    resync_concurrency: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """The settings from `environ` (default: the process environment); unset: defaults."""
        env = os.environ if environ is None else environ
        interval = _number(
            env, "BESPOKE_RECONCILE_INTERVAL_SECONDS", cls.reconcile_interval_seconds
        )
        return cls(
            trainer_image=env.get("BESPOKE_TRAINER_IMAGE") or cls.trainer_image,
            serving_image=env.get("BESPOKE_SERVING_IMAGE") or cls.serving_image,
            reconcile_interval_seconds=interval,
            resync_interval_seconds=_number(env, "BESPOKE_RESYNC_INTERVAL_SECONDS", 10 * interval),
            metrics_port=int(_number(env, "BESPOKE_METRICS_PORT", cls.metrics_port)),
            kubeconfig=env.get("KUBECONFIG") or None,
            retry_base_seconds=_number(env, "BESPOKE_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_cap_seconds=_number(env, "BESPOKE_RETRY_CAP_SECONDS", cls.retry_cap_seconds),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={raw!r}: expected a number of 0 or more, e.g. {default:g}")
    return value
