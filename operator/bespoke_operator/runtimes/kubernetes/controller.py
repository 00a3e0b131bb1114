"""The operator's control loop without kopf: triggers in, one reconcile per customization at a time.

Level-triggered on the generation, like a controller-runtime predicate: a customization's own
event is reconciled the first time this process sees it (kopf's initial listing, or a new
object) and on each new `metadata.generation`, remembered with its uid so one deleted and created
again under the same name counts as new; the echo of the operator's own status write, and
metadata-only edits, are not. Events of children (a finished trainer Job, a serving Deployment,
an approval) reconcile their owner. Everything no event announces is the resync queue's: the
next periodic pass is scheduled after every pass (`reconcile.schedule.next_check`), and a failed
pass is retried with exponential backoff and full jitter (`Backoff`), `Retry-After` honoured.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bespoke_operator.constants import CUSTOMIZATION_LABEL
from bespoke_operator.errors import ApiError
from bespoke_operator.metrics import OperatorMetrics
from bespoke_operator.reconcile.schedule import next_check
from bespoke_operator.runtimes.kubernetes.backoff import Backoff
from bespoke_operator.runtimes.kubernetes.resync import Key, ResyncQueue
from bespoke_operator.runtimes.kubernetes.runtime import KubernetesRuntime, Outcome, unreconciled
from bespoke_operator.settings import OperatorSettings

__all__ = ["Controller"]

_log = logging.getLogger(__name__)


class Controller:
    """Per-customization locks, the generation predicate, retries and the resync queue."""

    def __init__(
        self,
        runtime: KubernetesRuntime,
        metrics: OperatorMetrics,
        settings: OperatorSettings,
        *,
        random: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.settings = settings
        interval = settings.reconcile_interval_seconds
        self.backoff = Backoff(
            base=settings.retry_base_seconds, cap=settings.retry_cap_seconds, random=random
        )
        self.queue = ResyncQueue(
            self.periodic,
            tick=max(0.5, min(1.0, interval / 5)),
            fallback=interval,
            concurrency=settings.resync_concurrency,
            clock=clock,
        )
        self._random = random
        self._locks: dict[Key, asyncio.Lock] = {}
        # Key -> (uid, generation) last reconciled on its own event.
        self._handled: dict[Key, tuple[str | None, int | None]] = {}
        # Key -> uid of a customization deleted while a pass over it ran: that pass records
        # nothing (no gauges, no next check) and forgets it once it ends.
        self._deleted_meanwhile: dict[Key, str | None] = {}

    def remembers(self, key: Key) -> bool:
        """Whether anything of `key` is kept (a due time, a handled generation, a lock)."""
        return key in self.queue or key in self._handled or key in self._locks

    async def customization_event(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """A watch event of a customization (`event_type` None: kopf's initial listing)."""
        metadata = body.get("metadata", {})
        key = (metadata["namespace"], metadata["name"])
        if event_type == "DELETED":
            self.forget(key, uid=metadata.get("uid"))
            return
        seen = (metadata.get("uid"), metadata.get("generation"))
        if metadata.get("deletionTimestamp") or self._handled.get(key) == seen:
            return  # being deleted (children go by owner references), or this spec was handled
        self._handled[key] = seen
        # Just created, with no status yet: the event's body is as fresh as a re-read would be.
        new = event_type == "ADDED" and unreconciled(body)
        outcome = await self._on_event(key, known=body if new else None)
        if outcome is not None and outcome.decision is None:
            stalled = next((c for c in outcome.status.conditions if c.type == "Stalled"), None)
            _log.warning("%s/%s is stalled: %s", *key, stalled.message if stalled else "")

    async def child_event(self, body: Mapping[str, Any]) -> None:
        """A trainer finished, a rollout progressed, or a version was approved."""
        if body.get("kind") == "Job" and not _finished(body):
            return  # a Job being created or running changes nothing the core decides on
        metadata = body.get("metadata", {})
        name = metadata.get("labels", {}).get(CUSTOMIZATION_LABEL)
        if name and metadata.get("namespace"):
            await self._on_event((metadata["namespace"], name))

    async def periodic(self, key: Key) -> None:
        """The resync queue's pass over `key`: reads drift when due; a failure is rescheduled."""
        try:
            outcome = await self.reconcile(key, read_drift=True)
        except ApiError as exc:
            _log.warning("Periodic reconcile of %s/%s failed: %s", *key, exc)
            return
        if outcome is None:  # deleted
            self.forget(key)

    def forget(self, key: Key, uid: str | None = None) -> None:
        """Drops what is kept of a deleted customization; with `uid`, only if it is that one.

        A DELETED event may come after the first event of another customization created under
        the same name.
        """
        remembered = self._handled.get(key)
        if uid is not None and remembered is not None and remembered[0] != uid:
            return
        self.queue.forget(key)
        self._handled.pop(key, None)
        self.metrics.forget(*key)
        self.backoff.succeeded(key)
        lock = self._locks.get(key)
        if lock is not None and lock.locked():
            self._deleted_meanwhile[key] = uid
        elif lock is not None:
            del self._locks[key]

    async def reconcile(
        self, key: Key, *, read_drift: bool, known: Mapping[str, Any] | None = None
    ) -> Outcome | None:
        """One pass over `key`, counted and rescheduled; None when it no longer exists."""
        started = time.perf_counter()
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                outcome = await self.runtime.reconcile_and_record(
                    *key, known=known, read_drift=read_drift
                )
            except ApiError as exc:
                result = "temporary" if exc.retryable else "error"
                self.metrics.observe_reconcile(result, time.perf_counter() - started)
                at_least = 0.0 if exc.retryable else self.settings.permanent_retry_seconds
                delay = self.backoff.failed(key, retry_after=exc.retry_after, at_least=at_least)
                self.queue.schedule(key, delay)
                raise
            except Exception:
                self.metrics.observe_reconcile("error", time.perf_counter() - started)
                at_least = self.settings.reconcile_interval_seconds
                self.queue.schedule(key, self.backoff.failed(key, at_least=at_least))
                raise
            finally:
                deleted = key in self._deleted_meanwhile
                deleted_uid = self._deleted_meanwhile.pop(key, None)
        if deleted:  # the pass read it before it was deleted: its result describes nothing
            self.forget(key, uid=deleted_uid)
            return outcome
        self.backoff.succeeded(key)
        if outcome is None:  # gone: nothing was reconciled
            return None
        self.metrics.observe_reconcile("success", time.perf_counter() - started)
        if outcome.decision is not None:
            self.metrics.observe_decision(*key, outcome.decision)
        self.metrics.observe_status(*key, outcome.status, outcome.customization)
        self._schedule(key, outcome)
        return outcome

    async def _on_event(self, key: Key, known: Mapping[str, Any] | None = None) -> Outcome | None:
        """An event-driven pass; an API failure is logged, and the resync queue retries it."""
        try:
            outcome = await self.reconcile(key, read_drift=False, known=known)
        except ApiError as exc:
            delay = self.queue.due_in(key) or 0.0
            _log.warning("Reconcile of %s/%s failed (%s); retrying in %.0f s", *key, exc, delay)
            return None
        if outcome is None:  # gone: e.g. the event of a child garbage-collected after it
            self.forget(key)
        return outcome

    def _schedule(self, key: Key, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        at = next_check(
            outcome.customization,
            outcome.status,
            now=now,
            interval=timedelta(seconds=self.settings.reconcile_interval_seconds),
            resync=timedelta(seconds=self.settings.resync_interval_seconds),
        )
        # Jitter, so customizations created together do not all come due in the same tick.
        self.queue.schedule(key, (at - now).total_seconds() * (1.0 + 0.1 * self._random()))


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    return bool(status.get("succeeded") or status.get("failed")) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )
