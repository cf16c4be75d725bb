"""The batcher, in-process: requests that queue while the model is busy share one call, and a request whose rows make
the model raise fails alone — every other request of its batch still gets its results."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from bento.batching import Batcher, BatchResultError

POISON = -1.0  # a row starting with this makes the fake model raise, wherever it sits in a merged batch


class FakeModel:
    """Doubles the first column; raises on a poisoned row; can be held busy to let requests queue up."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # rows per call
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, rows: np.ndarray) -> list[float]:
        self.calls.append(len(rows))
        self.entered.set()
        assert self.release.wait(10), "the test never released the fake model"
        if np.any(rows[:, 0] == POISON):
            raise ValueError("Input X contains a value too large for dtype('float32')")
        return [float(v) * 2 for v in rows[:, 0]]


def block(*firsts: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in firsts])


async def hold_busy_then(model: FakeModel, batcher: Batcher, blocks: list[np.ndarray]) -> list:
    """Occupy the model with one request, queue ``blocks`` meanwhile, release: returns every request's outcome."""
    model.release.clear()
    model.entered.clear()
    first = asyncio.ensure_future(batcher.submit(block(100.0)))
    assert await asyncio.to_thread(model.entered.wait, 10), "the first request never reached the model"
    queued = [asyncio.ensure_future(batcher.submit(b)) for b in blocks]
    await asyncio.sleep(0)  # let the queued submissions enqueue before the model frees
    model.release.set()
    outcomes = await asyncio.gather(first, *queued, return_exceptions=True)
    assert outcomes[0] == [200.0]
    return outcomes[1:]


def test_requests_queued_while_the_model_is_busy_share_one_call() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_rows=100)
    outcomes = asyncio.run(hold_busy_then(model, batcher, [block(1.0), block(2.0, 3.0), block(4.0)]))
    assert outcomes == [[2.0], [4.0, 6.0], [8.0]], "each request gets its own rows' results, in order"
    assert model.calls == [1, 4], f"the three queued requests should be one call of 4 rows, calls: {model.calls}"


@pytest.mark.parametrize("poisoned", [[0], [3], [0, 5], [1, 2, 3, 4, 5, 6], list(range(7))])
def test_a_request_that_makes_the_model_raise_fails_alone(poisoned: list[int]) -> None:
    model = FakeModel()
    batcher = Batcher(model, max_rows=100)
    blocks = [block(POISON if i in poisoned else float(i + 1), 10.0) for i in range(7)]
    outcomes = asyncio.run(hold_busy_then(model, batcher, blocks))
    for i, outcome in enumerate(outcomes):
        if i in poisoned:
            assert isinstance(outcome, ValueError), f"request {i} is poisoned, got {outcome!r}"
        else:
            assert outcome == [float(i + 1) * 2, 20.0], f"good request {i} failed with its batch: {outcome!r}"
    assert batcher.stats.failed_requests == len(poisoned)
    assert batcher.stats.splits > 0


def test_merged_batches_stay_within_the_row_cap_and_an_oversized_request_goes_alone() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_rows=5)
    blocks = [block(*[1.0] * 3), block(*[2.0] * 3), block(*[3.0] * 7), block(4.0), block(5.0)]
    outcomes = asyncio.run(hold_busy_then(model, batcher, blocks))
    assert [len(o) for o in outcomes] == [3, 3, 7, 1, 1]
    assert model.calls == [1, 3, 3, 7, 2], f"calls (rows each): {model.calls}"


def test_the_event_loop_keeps_answering_while_the_model_is_busy() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_rows=10)

    async def scenario() -> int:
        model.release.clear()
        pending = asyncio.ensure_future(batcher.submit(block(1.0)))
        assert await asyncio.to_thread(model.entered.wait, 10)
        ticks = 0
        for _ in range(20):  # a health check is an await on this loop: it must run while predict is blocked
            await asyncio.sleep(0)
            ticks += 1
        assert not pending.done()
        model.release.set()
        assert await pending == [2.0]
        return ticks

    assert asyncio.run(scenario()) == 20


def test_a_request_cancelled_while_queued_is_skipped_and_the_others_are_served() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_rows=100)

    async def scenario() -> list:
        model.release.clear()
        first = asyncio.ensure_future(batcher.submit(block(1.0)))
        assert await asyncio.to_thread(model.entered.wait, 10)
        gone = asyncio.ensure_future(batcher.submit(block(2.0)))
        kept = asyncio.ensure_future(batcher.submit(block(3.0)))
        await asyncio.sleep(0)
        gone.cancel()
        model.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == [[2.0], [6.0]]
    assert model.calls == [1, 1], "the cancelled request's rows are never predicted"


def test_a_model_returning_the_wrong_number_of_results_fails_the_request_instead_of_misaligning() -> None:
    batcher = Batcher(lambda rows: [0.0] * (len(rows) + 1), max_rows=10)
    with pytest.raises(BatchResultError, match="2 results for 1 rows"):
        asyncio.run(batcher.submit(block(1.0)))


def test_row_cap_below_one_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="max_rows must be at least 1, got 0"):
        Batcher(FakeModel(), max_rows=0)


# ------------------------------------------------------------------------------------------ readiness (stalls)
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_model_call_that_never_returns_makes_the_batcher_unresponsive_past_the_timeout() -> None:
    model, clock = FakeModel(), Clock()
    batcher = Batcher(model, max_rows=100, clock=clock)

    async def scenario() -> tuple[list[bool], list[float]]:
        model.release.clear()  # the model thread hangs on the first call
        first = asyncio.ensure_future(batcher.submit(block(1.0)))
        await asyncio.to_thread(model.entered.wait, 5)
        queued = asyncio.ensure_future(batcher.submit(block(2.0)))  # waits behind the hung call
        await asyncio.sleep(0)
        seen, stalls = [batcher.responsive(10.0)], [batcher.stalled_s()]
        clock.now += 9.9
        seen.append(batcher.responsive(10.0))
        clock.now += 0.2  # 10.1 s since the model thread took the batch
        seen.append(batcher.responsive(10.0))
        stalls.append(batcher.stalled_s())
        model.release.set()  # the call returns after all: everything is answered, and it is responsive again
        await asyncio.gather(first, queued)
        seen.append(batcher.responsive(10.0))
        stalls.append(batcher.stalled_s())
        return seen, stalls

    seen, stalls = asyncio.run(scenario())
    assert seen == [True, True, False, True], "ready, still ready at 9.9 s, not ready at 10.1 s, ready when answered"
    assert stalls[0] == 0.0 and stalls[1] == pytest.approx(10.1) and stalls[2] == 0.0


def test_an_idle_batcher_is_responsive_and_a_request_queued_too_long_is_a_stall_too() -> None:
    model, clock = FakeModel(), Clock()
    batcher = Batcher(model, max_rows=100, clock=clock)
    assert batcher.responsive(0.001) and batcher.stalled_s() == 0.0, "nothing waiting: no stall, however strict"

    async def scenario() -> float:
        model.release.clear()
        first = asyncio.ensure_future(batcher.submit(block(1.0)))
        await asyncio.to_thread(model.entered.wait, 5)
        clock.now += 3.0
        later = asyncio.ensure_future(batcher.submit(block(2.0)))  # queued 3 s after the batch began
        await asyncio.sleep(0)
        stalled = batcher.stalled_s()  # the older of the two counts: the batch on the model thread
        model.release.set()
        await asyncio.gather(first, later)
        return stalled

    assert asyncio.run(scenario()) == pytest.approx(3.0)


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), ("", 30.0), ("0", 30.0), ("soon", 30.0)])
def test_the_readiness_limit_is_the_deployments_request_timeout_else_the_services_own(value, expected) -> None:
    from bento.batching import TIMEOUT_ENV, request_timeout_s

    assert request_timeout_s(30.0, {TIMEOUT_ENV: value}) == expected
