"""Greedy micro-batching: requests that arrive while the model is busy ride in its next batch.

The alternative, BentoML's adaptive batching (its `CorkDispatcher`), deliberately waits for a
batch to fill, and learns how long to wait from the waits it has seen: after a burst at high
concurrency it kept each lone request waiting for over a second (measured on this project's
2-core machine; see `benchmarks/README.md`). Here no request ever waits for company: the model
takes whatever is queued the moment it is free, so a lone request goes straight through and
under load the batches grow by themselves to `max_batch_size`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from bespoke_serving.errors import OverloadedError

__all__ = ["MicroBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class _Job(Generic[In, Out]):
    items: Sequence[In]
    future: asyncio.Future[list[Out]]


class MicroBatcher(Generic[In, Out]):
    """Calls `fn` on concatenated request items, one call at a time, in a dedicated thread.

    One call at a time also keeps fast tokenizers safe: they refuse concurrent use. A request
    larger than `max_batch_size` forms a batch alone rather than being split. At most
    `max_queued_items` items wait (a request that would go beyond raises `OverloadedError`, so a
    flood ends in quick refusals rather than in memory growing until the pod is killed); a
    request always gets in when nothing waits. Use one batcher per event loop (a BentoML worker
    has one).
    """

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out]],
        max_batch_size: int,
        max_queued_items: int | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"`max_batch_size` must be at least 1, got {max_batch_size}")
        self._fn = fn
        self.max_batch_size = max_batch_size
        self.max_queued_items = max_queued_items
        self.queued_items = 0
        self._queue: deque[_Job[In, Out]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bespoke-model")
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    async def __call__(self, items: Sequence[In]) -> list[Out]:
        """The outputs for `items`, in order, computed in some batch."""
        if not items:
            return []
        bound = self.max_queued_items
        if bound is not None and self._queue and self.queued_items + len(items) > bound:
            raise OverloadedError(
                f"the model has {self.queued_items} texts queued and takes at most {bound}: "
                "retry after a moment"
            )
        loop = asyncio.get_running_loop()
        job: _Job[In, Out] = _Job(items, loop.create_future())
        self._queue.append(job)
        self.queued_items += len(items)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await job.future

    def close(self) -> None:
        """Release the model thread once the current batch is done."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _next_batch(self) -> list[_Job[In, Out]]:
        jobs: list[_Job[In, Out]] = []
        size = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # the client went away: compute nothing for it
                self._queue.popleft()
                self.queued_items -= len(job.items)
                continue
            if jobs and size + len(job.items) > self.max_batch_size:
                break
            jobs.append(self._queue.popleft())
            self.queued_items -= len(job.items)
            size += len(job.items)
        return jobs

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while jobs := self._next_batch():
            flat = [item for job in jobs for item in job.items]
            self.batch_sizes.append(len(flat))
            try:
                outputs = await loop.run_in_executor(self._executor, self._fn, flat)
                if len(outputs) != len(flat):
                    raise RuntimeError(f"batch of {len(flat)} gave {len(outputs)} outputs")
            except Exception as exc:
                # Every request in a failed batch gets the error; the next batch still runs.
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.items)
                if not job.future.done():
                    job.future.set_result(list(outputs[start:end]))
                start = end
