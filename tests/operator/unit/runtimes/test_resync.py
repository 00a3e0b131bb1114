"""The resync queue: what is due starts, at most once per key, without waiting for slow passes."""

from __future__ import annotations

import asyncio

import pytest

from bespoke_operator.runtimes.kubernetes.resync import Key, ResyncQueue

pytestmark = pytest.mark.asyncio

A, B = ("ns", "a"), ("ns", "b")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_only_due_keys_start_and_each_gets_a_fallback_due_time() -> None:
    clock = _Clock()
    ran: list[Key] = []

    async def run(key: Key) -> None:
        ran.append(key)

    queue = ResyncQueue(run, tick=1, fallback=30, concurrency=4, clock=clock)
    queue.schedule(A, 5)
    queue.schedule(B, 50)
    assert queue.start_due() == []
    clock.now += 5
    await asyncio.gather(*queue.start_due())
    assert ran == [A]
    # Should the pass not reschedule itself, it comes round again after the fallback.
    assert queue.due_in(A) == 30
    assert queue.due_in(B) == 45


async def test_a_slow_pass_does_not_hold_back_others_nor_run_twice() -> None:
    clock = _Clock()
    release = asyncio.Event()
    started: list[Key] = []

    async def run(key: Key) -> None:
        started.append(key)
        if key == A:
            await release.wait()

    queue = ResyncQueue(run, tick=1, fallback=0, concurrency=4, clock=clock)
    queue.schedule(A, 0)
    [slow] = queue.start_due()
    await asyncio.sleep(0)
    queue.schedule(A, 0)
    queue.schedule(B, 0)
    [other] = queue.start_due()  # A is still running: only B starts
    await other
    assert started == [A, B]
    release.set()
    await slow
    # With no fallback delay both are due again; A starts again now that its pass ended.
    again = queue.start_due()
    assert sorted(t.get_name() for t in again) == ["bespoke-resync-ns/a", "bespoke-resync-ns/b"]
    await asyncio.gather(*again)


async def test_a_failing_pass_is_logged_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run(key: Key) -> None:
        raise RuntimeError("boom")

    queue = ResyncQueue(run, tick=1, fallback=10, concurrency=1, clock=_Clock())
    queue.schedule(A, 0)
    await asyncio.gather(*queue.start_due())
    assert "Periodic reconcile of ns/a failed" in caplog.text
    assert queue.due_in(A) == 10


async def test_forgotten_keys_never_come_due() -> None:
    async def run(key: Key) -> None:
        raise AssertionError("a forgotten key ran")

    queue = ResyncQueue(run, tick=1, fallback=10, concurrency=1, clock=_Clock())
    queue.schedule(A, 0)
    queue.forget(A)
    assert A not in queue
    assert queue.start_due() == []
