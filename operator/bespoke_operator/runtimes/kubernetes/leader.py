"""Leader election over a `coordination.k8s.io/v1` Lease, with client-go's semantics.

One replica holds the Lease and reconciles; the others stand by, trying every retry period. A
standby takes the Lease over only when the record it last saw (holder, renew time) has not
changed for the lease duration, timed on its own monotonic clock (no trust in other nodes'
clocks), and only through a write at the resourceVersion it read, so that of two standbys one
wins and the other gets a 409. A leader that cannot renew for the renew deadline (shorter than
the duration) stops the process before a standby may take over: two writers never overlap
while clocks run at the same rate. A leader that stops cleanly hands the Lease back at once.

Why a Lease rather than kopf's peering: kopf's peering pauses an operator only for a peer of
*higher* priority (equal priorities both keep running, with a warning), so the replicas of one
Deployment would need distinct priorities and a restarted higher-priority pod would take the
work back mid-flight; its pause freezes kopf's watchers but not the controller's own resync
queue; and it needs two more CRDs. A Lease is the cluster's own primitive for this, which
`kubectl get lease` and every Kubernetes controller already read the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from aiohttp import web

from bespoke_operator.errors import ApiError
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path
from bespoke_operator.settings import OperatorSettings

__all__ = ["LEADERSHIP_LOST_EXIT_CODE", "LeaderElector", "lead", "standby_health"]

_log = logging.getLogger(__name__)

#: The exit status of a leader that could not renew its Lease (the pod restarts as a standby).
LEADERSHIP_LOST_EXIT_CODE: Final = 3
_LEASES: Final = ("coordination.k8s.io/v1", "leases")
_TRANSIENT: Final = (ApiError, aiohttp.ClientError, OSError, TimeoutError)


def _stop_process() -> None:
    """Ends the process now: a leader that lost its Lease must not write one more object."""
    logging.shutdown()
    os._exit(LEADERSHIP_LOST_EXIT_CODE)


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self,
        api: KubeApi,
        settings: OperatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_lost: Callable[[], None] = _stop_process,
    ) -> None:
        if not settings.lease_namespace:
            raise ValueError("leader election needs a namespace for its Lease")
        self._api = api
        self._settings = settings
        self._clock = clock
        self._on_lost = on_lost
        self.identity = settings.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._path = resource_path(*_LEASES, settings.lease_namespace, settings.lease_name)
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        #: The holder the last read or write saw ("" when nobody holds it).
        self.holder = ""
        self._keeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once leading (answering `/healthz` meanwhile) and keeps renewing after."""
        async with standby_health(self._settings.health_port):
            await self.acquire()
        self._keeping = asyncio.create_task(self.keep(), name="bespoke-lease")

    async def stop(self) -> None:
        """Stops renewing and hands the Lease back; for a clean shutdown, after the last write."""
        if self._keeping is not None:
            self._keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeping
        try:
            await self.release()
        except _TRANSIENT as exc:  # the Lease then expires after its duration
            _log.warning("Lease %s not released: %s", self._path, exc)

    async def acquire(self) -> None:
        """Returns once this identity holds the Lease (tries every retry period, jittered)."""
        _log.info("Standing by for Lease %s as %s", self._path, self.identity)
        while not await self._try():
            await asyncio.sleep(self._settings.lease_retry_seconds * (1 + 0.2 * random.random()))
        _log.info("Leading: acquired Lease %s as %s", self._path, self.identity)

    async def keep(self) -> None:
        """Renews every retry period; calls `on_lost` (default: exit) when it cannot.

        Lost means another holder was seen, or no renewal succeeded for the renew deadline.
        """
        settings = self._settings
        renewed = self._clock()
        while True:
            await asyncio.sleep(settings.lease_retry_seconds)
            left = renewed + settings.lease_renew_deadline_seconds - self._clock()
            ok = False
            if left > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    ok = await asyncio.wait_for(self._try(), timeout=left)
            if ok:
                renewed = self._clock()
                continue
            if self.holder not in ("", self.identity):
                _log.critical("Lease %s taken over by %s: stopping", self._path, self.holder)
            elif self._clock() - renewed < settings.lease_renew_deadline_seconds:
                continue
            else:
                _log.critical(
                    "Lease %s not renewed for %gs (renew deadline): stopping",
                    self._path,
                    settings.lease_renew_deadline_seconds,
                )
            self._on_lost()
            return

    async def release(self) -> None:
        """Hands the Lease back (a standby takes over without waiting out the duration)."""
        lease = await self._api.get(self._path)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        now = _micro_time(datetime.now(UTC))
        lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=now)
        if await self._api.replace(self._path, lease):
            _log.info("Released Lease %s", self._path)

    async def _try(self) -> bool:
        """One acquire-or-renew; False while another live holder has it, or on a lost race."""
        try:
            return await self._acquire_or_renew()
        except _TRANSIENT as exc:
            _log.warning("Lease %s: %s (retrying)", self._path, exc)
            return False

    async def _acquire_or_renew(self) -> bool:
        settings = self._settings
        now = _micro_time(datetime.now(UTC))
        duration = math.ceil(settings.lease_duration_seconds)
        lease = await self._api.get(self._path)
        if lease is None:
            fresh: dict[str, Any] = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            body = {
                "apiVersion": _LEASES[0],
                "kind": "Lease",
                "metadata": {"name": settings.lease_name, "namespace": settings.lease_namespace},
                "spec": fresh,
            }
            created = await self._api.create(self._path.rsplit("/", 1)[0], body)
            if created:
                self._observe(fresh, self.identity)
            return created
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self._observe(spec, holder)
        held_for = float(spec.get("leaseDurationSeconds") or duration)
        if holder not in ("", self.identity) and self._clock() < self._observed_at + held_for:
            return False
        renewed = dict(spec, holderIdentity=self.identity, leaseDurationSeconds=duration)
        renewed["renewTime"] = now
        if holder != self.identity:
            renewed["acquireTime"] = now
            renewed["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = renewed
        if not await self._api.replace(self._path, lease):
            return False
        self._observe(renewed, self.identity)
        return True

    def _observe(self, spec: dict[str, Any], holder: str) -> None:
        """Restarts the expiry clock whenever the record changes (a live holder renews it)."""
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        self.holder = holder


async def lead(api: KubeApi, settings: OperatorSettings) -> LeaderElector | None:
    """With leader election on: waits until this process leads, and keeps the Lease renewed."""
    if not settings.leader_election:
        return None
    elector = LeaderElector(api, settings)
    await elector.start()
    return elector


@contextlib.asynccontextmanager
async def standby_health(port: int) -> AsyncIterator[None]:
    """Answers `/healthz` on `port` while standing by (kopf's own endpoint starts with the
    leader's handlers); nothing when `port` is 0."""
    if not port:
        yield
        return

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"leader": False})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port, reuse_address=True).start()
    try:
        yield
    finally:
        await runner.cleanup()


def _micro_time(when: datetime) -> str:
    """A `MicroTime` as the API server writes it."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
