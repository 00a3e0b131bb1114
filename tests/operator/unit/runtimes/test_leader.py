"""Leader election rules over an in-memory Lease store with resourceVersion conflicts.

The cluster test (tests/operator/cluster/test_leader_election.py) runs two real operators; these pin
the
rules one at a time, on a clock the test moves.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

import aiohttp
import pytest

from bespoke_operator.errors import ApiError
from bespoke_operator.runtimes.kubernetes.client import KubeApi
from bespoke_operator.runtimes.kubernetes.leader import LeaderElector, standby_health
from bespoke_operator.settings import OperatorSettings

pytestmark = pytest.mark.asyncio

SETTINGS = OperatorSettings(leader_election=True, lease_namespace="ops")


class Leases:
    """get/create/replace as the API server answers them: a stale resourceVersion is a 409."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.down = False
        self._version = 0
        self.before_replace: Callable[[], Awaitable[None]] | None = None

    def _check(self, path: str) -> None:
        if self.down:
            raise ApiError(503, "Service Unavailable", path)

    async def get(self, path: str) -> dict[str, Any] | None:
        self._check(path)
        found = self.objects.get(path)
        return copy.deepcopy(found) if found else None

    async def create(self, path: str, body: dict[str, Any]) -> bool:
        self._check(path)
        key = f"{path}/{body['metadata']['name']}"
        if key in self.objects:
            return False
        self._store(key, body)
        return True

    async def replace(self, path: str, body: dict[str, Any]) -> bool:
        self._check(path)
        if self.before_replace is not None:
            await self.before_replace()
        if body["metadata"].get("resourceVersion") != self.objects[path]["metadata"].get(
            "resourceVersion"
        ):
            return False
        self._store(path, body)
        return True

    def _store(self, key: str, body: dict[str, Any]) -> None:
        self._version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self._version)
        self.objects[key] = stored

    def spec(self) -> dict[str, Any]:
        (lease,) = self.objects.values()
        spec: dict[str, Any] = lease["spec"]
        return spec


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _elector(leases: Leases, clock: Clock, identity: str, lost: list[str]) -> LeaderElector:
    return LeaderElector(
        cast(KubeApi, leases),
        replace(SETTINGS, identity=identity),
        clock=clock,
        on_lost=lambda: lost.append(identity),
    )


async def test_one_holder_and_a_standby_takes_over_only_after_the_duration_unrenewed() -> None:
    leases, clock, lost = Leases(), Clock(), list[str]()
    a, b = _elector(leases, clock, "a", lost), _elector(leases, clock, "b", lost)
    assert await a._try()
    assert not await b._try()
    clock.now += SETTINGS.lease_duration_seconds - 1
    assert not await b._try()
    # a renews: b's expiry clock starts again from when it sees the new record.
    assert await a._try()
    assert not await b._try()
    clock.now += SETTINGS.lease_duration_seconds - 1
    assert not await b._try()
    clock.now += 2
    assert await b._try()
    assert leases.spec()["holderIdentity"] == "b"
    assert leases.spec()["leaseTransitions"] == 1
    # a, back, sees b holding it.
    assert not await a._try()
    assert a.holder == "b"


async def test_of_two_standbys_racing_for_an_expired_lease_one_wins() -> None:
    leases, clock, lost = Leases(), Clock(), list[str]()
    a = _elector(leases, clock, "a", lost)
    b, c = _elector(leases, clock, "b", lost), _elector(leases, clock, "c", lost)
    assert await a._try()
    assert not await b._try()
    assert not await c._try()
    clock.now += SETTINGS.lease_duration_seconds + 1

    # c has read the expired Lease; b writes it before c does: c's write is refused (409).
    async def b_first() -> None:
        leases.before_replace = None
        assert await b._try()

    leases.before_replace = b_first
    assert not await c._try()
    assert leases.spec()["holderIdentity"] == "b"
    assert leases.spec()["leaseTransitions"] == 1


async def test_a_released_lease_is_taken_at_once() -> None:
    leases, clock, lost = Leases(), Clock(), list[str]()
    a, b = _elector(leases, clock, "a", lost), _elector(leases, clock, "b", lost)
    assert await a._try()
    assert not await b._try()
    await a.release()
    assert leases.spec()["holderIdentity"] == ""
    assert await b._try()


async def test_a_leader_that_cannot_renew_for_the_renew_deadline_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leases, clock, lost = Leases(), Clock(), list[str]()
    a = _elector(leases, clock, "a", lost)
    assert await a._try()

    async def tick(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("bespoke_operator.runtimes.kubernetes.leader.asyncio.sleep", tick)
    leases.down = True
    await a.keep()
    assert lost == ["a"]
    # Stopped before any standby may take over: the deadline is shorter than the duration.
    assert clock.now - 100.0 < SETTINGS.lease_duration_seconds


async def test_a_leader_that_sees_another_holder_stops_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leases, clock, lost = Leases(), Clock(), list[str]()
    a = _elector(leases, clock, "a", lost)
    assert await a._try()
    leases.spec()["holderIdentity"] = "intruder"

    async def tick(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("bespoke_operator.runtimes.kubernetes.leader.asyncio.sleep", tick)
    await a.keep()
    assert lost == ["a"]
    assert clock.now - 100.0 == SETTINGS.lease_retry_seconds


async def test_a_standby_answers_its_liveness_probe_and_frees_the_port_when_it_leads() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    async with (
        standby_health(port),
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as answer,
    ):
        assert answer.status == 200
        assert await answer.json() == {"leader": False}
    # kopf's own liveness endpoint takes the port over once this process leads.
    with socket.socket() as after:
        after.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        after.bind(("0.0.0.0", port))
