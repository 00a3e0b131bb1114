"""The operator's settings: one typed object, read from the environment once, at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

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
    #: `BESPOKE_RETRY_CAP_SECONDS`: the longest retry delay, `Retry-After` included; at least the
    #: base (unset: 300 s, or the base when that is higher).
    retry_cap_seconds: float = 300.0
    #: Seconds before a pass the API refused for good (e.g. a missing RBAC permission) is tried
    #: again: a person has to act first.
    permanent_retry_seconds: float = 60.0
    #: How many periodic reconciles run at once: event-driven ones keep their turn between them.
    resync_concurrency: int = 8
    #: `BESPOKE_LEADER_ELECTION` (`1`/`true`): reconcile only while holding a Lease, so that
    #: replicas stand by. Off by default outside the chart (one process, nothing to elect).
    leader_election: bool = False
    #: `BESPOKE_LEADER_ELECTION_NAMESPACE` (else `BESPOKE_OPERATOR_NAMESPACE`, which the chart
    #: sets to the pod's namespace) and `BESPOKE_LEADER_ELECTION_LEASE`: where the Lease lives.
    lease_namespace: str | None = None
    lease_name: str = "bespoke-operator"
    #: `POD_ID` (the chart: the pod's name): who holds the Lease; unset: the host name and a
    #: random suffix.
    identity: str = ""
    #: `BESPOKE_LEASE_DURATION_SECONDS`: how long a standby waits, after the last renewal it saw,
    #: before it takes the Lease over; the longest failover after a leader dies.
    lease_duration_seconds: float = 15.0
    #: `BESPOKE_LEASE_RENEW_DEADLINE_SECONDS`: a leader that could not renew for this long stops
    #: (exits) before anybody else may take over; shorter than the lease duration.
    lease_renew_deadline_seconds: float = 10.0
    #: `BESPOKE_LEASE_RETRY_SECONDS`: how often the leader renews and a standby tries.
    lease_retry_seconds: float = 2.0
    #: `BESPOKE_HEALTH_PORT`: a standby answers `/healthz` on this port until it leads (then
    #: kopf's `--liveness` endpoint takes the port over); 0: no standby endpoint.
    health_port: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """The settings from `environ` (default: the process environment); unset: defaults."""
        env = os.environ if environ is None else environ
        interval = _positive(
            env, "BESPOKE_RECONCILE_INTERVAL_SECONDS", cls.reconcile_interval_seconds
        )
        base = _positive(env, "BESPOKE_RETRY_BASE_SECONDS", cls.retry_base_seconds)
        cap = _positive(env, "BESPOKE_RETRY_CAP_SECONDS", max(cls.retry_cap_seconds, base))
        if cap < base:
            raise ValueError(
                f"BESPOKE_RETRY_CAP_SECONDS ({cap:g}) is below BESPOKE_RETRY_BASE_SECONDS "
                f"({base:g}): the longest retry delay must be at least the first; raise the cap "
                "or lower the base"
            )
        return cls(
            trainer_image=env.get("BESPOKE_TRAINER_IMAGE") or cls.trainer_image,
            serving_image=env.get("BESPOKE_SERVING_IMAGE") or cls.serving_image,
            reconcile_interval_seconds=interval,
            resync_interval_seconds=_positive(
                env, "BESPOKE_RESYNC_INTERVAL_SECONDS", 10 * interval
            ),
            metrics_port=int(_number(env, "BESPOKE_METRICS_PORT", cls.metrics_port)),
            kubeconfig=env.get("KUBECONFIG") or None,
            retry_base_seconds=base,
            retry_cap_seconds=cap,
            **_leader_election(env),
        )


def _leader_election(env: Mapping[str, str]) -> dict[str, Any]:
    """The leader-election fields; the lease timings must leave the old leader time to stop."""
    d = OperatorSettings
    enabled = _flag(env, "BESPOKE_LEADER_ELECTION")
    namespace = env.get("BESPOKE_LEADER_ELECTION_NAMESPACE") or env.get(
        "BESPOKE_OPERATOR_NAMESPACE"
    )
    if enabled and not namespace:
        raise ValueError(
            "BESPOKE_LEADER_ELECTION is on but no namespace holds its Lease: set "
            "BESPOKE_LEADER_ELECTION_NAMESPACE (or BESPOKE_OPERATOR_NAMESPACE) to the "
            "operator's namespace"
        )
    duration = _number(env, "BESPOKE_LEASE_DURATION_SECONDS", d.lease_duration_seconds)
    renew = _number(env, "BESPOKE_LEASE_RENEW_DEADLINE_SECONDS", d.lease_renew_deadline_seconds)
    retry = _number(env, "BESPOKE_LEASE_RETRY_SECONDS", d.lease_retry_seconds)
    if not 0 < retry < renew < duration:
        raise ValueError(
            f"lease timings: expected 0 < BESPOKE_LEASE_RETRY_SECONDS ({retry:g}) < "
            f"BESPOKE_LEASE_RENEW_DEADLINE_SECONDS ({renew:g}) < "
            f"BESPOKE_LEASE_DURATION_SECONDS ({duration:g}), e.g. 2 < 10 < 15, so that a "
            "leader that cannot renew stops before a standby takes over"
        )
    return {
        "leader_election": enabled,
        "lease_namespace": namespace or None,
        "lease_name": env.get("BESPOKE_LEADER_ELECTION_LEASE") or d.lease_name,
        "identity": env.get("POD_ID") or "",
        "lease_duration_seconds": duration,
        "lease_renew_deadline_seconds": renew,
        "lease_retry_seconds": retry,
        "health_port": int(_number(env, "BESPOKE_HEALTH_PORT", d.health_port)),
    }


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: expected true or false (1/0, yes/no, on/off)")


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


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    """An interval or delay: 0 would spin (a timer that fires at once, a retry without pause)."""
    value = _number(env, name, default)
    if value <= 0:
        raise ValueError(
            f"{name}={env.get(name)!r}: expected more than 0 seconds, e.g. {default:g}"
        )
    return value
