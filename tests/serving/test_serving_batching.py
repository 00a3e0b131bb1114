"""Greedy micro-batching, with a plain function standing in for the model (no model needed)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bespoke_serving.batching import MicroBatcher
from bespoke_serving.errors import OverloadedError


class GatedModel:
    """Doubles numbers; the first call waits for `release`, so requests pile up behind it."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        self.release.wait(10)
        if any(i < 0 for i in items):
            raise ValueError("negative input")
        return [2 * i for i in items]


async def _wait_entered(model: GatedModel) -> None:
    await asyncio.to_thread(model.entered.wait, 10)


def test_a_lone_request_is_computed_at_once_without_waiting_for_company() -> None:
    model = GatedModel()
    model.release.set()
    batcher = MicroBatcher(model, max_batch_size=32)
    assert asyncio.run(batcher([1, 2, 3])) == [2, 4, 6]
    assert model.calls == [[1, 2, 3]]


def test_requests_queued_while_the_model_is_busy_share_one_batch_in_order() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=32)

    async def scenario() -> list[list[int]]:
        first = asyncio.create_task(batcher([1]))
        await _wait_entered(model)
        queued = [asyncio.create_task(batcher([10 * i, 10 * i + 1])) for i in range(1, 6)]
        await asyncio.sleep(0)
        model.release.set()
        return [await first, *[await q for q in queued]]

    results = asyncio.run(scenario())
    assert results == [[2], *[[20 * i, 20 * i + 2] for i in range(1, 6)]]
    assert model.calls == [[1], [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]]
    assert list(batcher.batch_sizes) == [1, 10]


def test_batches_never_exceed_the_maximum_and_an_oversized_request_goes_alone() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=4)

    async def scenario() -> list[list[int]]:
        first = asyncio.create_task(batcher([0]))
        await _wait_entered(model)
        sizes = [3, 2, 6, 1, 1]
        queued = [asyncio.create_task(batcher(list(range(n)))) for n in sizes]
        await asyncio.sleep(0)
        model.release.set()
        await first
        return [await q for q in queued]

    results = asyncio.run(scenario())
    assert results == [[2 * i for i in range(n)] for n in [3, 2, 6, 1, 1]]
    # [3] then [2] would make 5 > 4; the 6-text request is alone; the two 1s share.
    assert [len(c) for c in model.calls] == [1, 3, 2, 6, 2]


def test_a_failing_batch_fails_its_requests_and_the_next_batch_still_runs() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=2)

    async def scenario() -> tuple[BaseException | list[int], ...]:
        first = asyncio.create_task(batcher([1]))
        await _wait_entered(model)
        bad = asyncio.create_task(batcher([-1]))
        mate = asyncio.create_task(batcher([5]))
        after = asyncio.create_task(batcher([7]))
        await asyncio.sleep(0)
        model.release.set()
        return tuple(await asyncio.gather(first, bad, mate, after, return_exceptions=True))

    first, bad, mate, after = asyncio.run(scenario())
    assert first == [2]
    assert isinstance(bad, ValueError)
    assert isinstance(mate, ValueError)  # same batch as the bad input
    assert after == [14]


def test_a_request_whose_client_left_is_not_computed() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=8)

    async def scenario() -> list[int]:
        first = asyncio.create_task(batcher([1]))
        await _wait_entered(model)
        gone = asyncio.create_task(batcher([99]))
        kept = asyncio.create_task(batcher([3]))
        await asyncio.sleep(0)
        gone.cancel()
        model.release.set()
        await first
        return await kept

    assert asyncio.run(scenario()) == [6]
    assert model.calls == [[1], [3]]


def test_empty_requests_and_bad_sizes() -> None:
    batcher = MicroBatcher(GatedModel(), max_batch_size=2)
    assert asyncio.run(batcher([])) == []
    with pytest.raises(ValueError, match="`max_batch_size`"):
        MicroBatcher(GatedModel(), max_batch_size=0)


def test_a_full_queue_refuses_new_requests_and_takes_them_again_once_it_drains() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_size=4, max_queued_items=5)

    async def scenario() -> tuple[list[int], str, list[list[int]], list[int]]:
        first = asyncio.create_task(batcher([1]))  # taken by the model at once
        await _wait_entered(model)
        queued = [asyncio.create_task(batcher([i, i])) for i in (2, 3)]  # 4 texts wait
        await asyncio.sleep(0)
        assert batcher.queued_items == 4
        with pytest.raises(OverloadedError) as refused:
            await batcher([9, 9])  # 6 > 5
        model.release.set()
        done = [await first, *[await q for q in queued]]
        return done[0], str(refused.value), done[1:], await batcher([7])

    first, message, queued, after = asyncio.run(scenario())
    assert (first, queued, after) == ([2], [[4, 4], [6, 6]], [14])
    assert "4 texts queued and takes at most 5" in message
    assert batcher.queued_items == 0


def test_a_request_larger_than_the_queue_bound_gets_in_when_nothing_waits() -> None:
    model = GatedModel()
    model.release.set()
    batcher = MicroBatcher(model, max_batch_size=4, max_queued_items=2)
    assert asyncio.run(batcher([1, 2, 3])) == [2, 4, 6]
