"""The operator-wide resync queue: when each customization is next reconciled periodically.

One loop for every customization instead of a kopf timer per object (a task and a finalizer
each). Every `tick` it starts the passes that have come due, without waiting for earlier, slower
ones (a drift reading that times out must not hold back a retry due in 2 s); at most
`concurrency` run at once, so event-driven passes keep their turn, and one key never runs twice
at the same time. What is due when is decided by the caller (`schedule`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["Key", "ResyncQueue"]

_log = logging.getLogger(__name__)

#: A customization: (namespace, name).
Key = tuple[str, str]


class ResyncQueue:
    """Due times by key, and the loop that runs each key's pass when it comes due."""

    def __init__(
        self,
        run: Callable[[Key], Awaitable[None]],
        *,
        tick: float,
        fallback: float,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`run(key)` is one pass; `fallback`: seconds to the next one should it not reschedule."""
        self._run = run
        self.tick = tick
        self._fallback = fallback
        self._clock = clock
        self._gate = asyncio.Semaphore(concurrency)
        self._due: dict[Key, float] = {}
        self._running: dict[Key, asyncio.Task[None]] = {}

    def schedule(self, key: Key, delay: float) -> None:
        """`key` comes due `delay` seconds from now (replacing any earlier plan)."""
        self._due[key] = self._clock() + delay

    def forget(self, key: Key) -> None:
        """`key` is never due again (until scheduled anew)."""
        self._due.pop(key, None)

    def due_in(self, key: Key) -> float | None:
        """Seconds until `key` is due (negative when overdue); None when not scheduled."""
        at = self._due.get(key)
        return None if at is None else at - self._clock()

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def start_due(self) -> list[asyncio.Task[None]]:
        """Starts the pass of every key that is due and not running; answers the new tasks."""
        now = self._clock()
        started = []
        for key in [k for k, at in self._due.items() if at <= now and k not in self._running]:
            self._due[key] = now + self._fallback
            task = asyncio.create_task(self._guarded(key), name=f"bespoke-resync-{key[0]}/{key[1]}")
            self._running[key] = task
            task.add_done_callback(functools.partial(self._ended, key))
            started.append(task)
        return started

    async def run_forever(self) -> None:
        """Starts due passes every tick until cancelled; cancels the passes still running."""
        try:
            while True:
                await asyncio.sleep(self.tick)
                self.start_due()
        finally:
            for task in list(self._running.values()):
                task.cancel()

    def _ended(self, key: Key, _: object) -> None:
        self._running.pop(key, None)

    async def _guarded(self, key: Key) -> None:
        async with self._gate:
            try:
                await self._run(key)
            except Exception:  # the loop must outlive any one customization's failure
                _log.exception("Periodic reconcile of %s/%s failed", *key)
