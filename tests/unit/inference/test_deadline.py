"""The time limits of one exchange with a replica (backends/deadline.py), and their settings."""

from __future__ import annotations

import asyncio

import pytest

from jaif.config import InferenceSettings
from jaif.errors import InvalidRequest
from jaif.inference.backends.deadline import Deadline, Timeouts, Watch
from jaif.inference.backends.transport import TransportError
from jaif.inference.models import Model
from jaif.inference.service import set_timeouts


def start(timeouts: Timeouts, confirm) -> Deadline:
    return Watch(timeouts, confirm).start()


async def waits(deadline: Deadline, seconds: float) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError as exc:
        raise deadline.expired(exc) from None
    finally:
        deadline.close()


async def test_a_late_first_byte_from_a_replica_that_fails_its_check_ends_the_exchange():
    async def failing() -> bool:
        return False

    deadline = start(Timeouts(ttfb_s=0.05, idle_s=10, total_s=10), failing)
    with pytest.raises(TransportError, match="first-byte limit") as late:
        await waits(deadline, 5)
    assert late.value.timeout and not late.value.answered


async def test_a_late_first_byte_from_a_replica_that_passes_its_check_is_waited_for():
    checks = []

    async def passing() -> bool:
        checks.append(1)
        return True

    deadline = start(Timeouts(ttfb_s=0.05, idle_s=10, total_s=10), passing)
    await waits(deadline, 0.3)  # not cancelled: the replica works, the answer is waited for
    assert checks == [1] and deadline.reason is None  # checked once, not once per sweep


async def test_a_failed_check_that_lands_after_the_exchange_ended_cancels_nothing():
    """The check and the answer may finish in the same turn of the loop: the check's callback then runs
    after close(), and must not cancel the task, which has moved on (review of issue 11's limits)."""
    release = asyncio.Event()

    async def failing_later() -> bool:
        await release.wait()
        return False

    deadline = start(Timeouts(ttfb_s=0.01, idle_s=10, total_s=10), failing_later)
    while deadline._probe is None:  # the late first byte has started a check
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.sleep(0)  # the check finishes; its done-callback is scheduled, not run
    deadline.close()  # the answer came in the same turn
    await asyncio.sleep(0.05)  # the callback (had it stayed registered) runs now
    assert deadline.reason is None and not asyncio.current_task().cancelling()


async def test_the_idle_limit_counts_from_the_last_event():
    async def passing() -> bool:
        return True

    deadline = start(Timeouts(ttfb_s=10, idle_s=0.1, total_s=10), passing)
    deadline.first_event()
    deadline.events = 1
    with pytest.raises(TransportError, match="idle limit") as idle:
        await waits(deadline, 5)
    assert idle.value.answered


async def test_a_cancellation_from_elsewhere_passes_through():
    async def failing() -> bool:
        return False

    async def exchange() -> None:
        await waits(start(Timeouts(ttfb_s=0.05, idle_s=10, total_s=10), failing), 5)

    task = asyncio.create_task(exchange())
    await asyncio.sleep(0.01)
    task.cancel()  # a client that left, before any limit passed
    with pytest.raises(asyncio.CancelledError):
        await task


def test_read_timeout_s_is_deprecated_into_the_idle_limit():
    assert InferenceSettings(read_timeout_s=120).idle_timeout_s == 120
    assert InferenceSettings(read_timeout_s=120, idle_timeout_s=30).idle_timeout_s == 30
    assert InferenceSettings().idle_timeout_s == 60 and InferenceSettings().ttfb_timeout_s == 30


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_models_limit_must_be_a_number_of_seconds(value):
    """NaN compares false with every time: stored, it would switch the model's limit off (review)."""
    model = Model(name="m")
    with pytest.raises(InvalidRequest, match="must be a number of seconds") as refused:
        set_timeouts(model, ttfb_timeout_s=value)
    assert refused.value.param == "ttfb_timeout_s" and model.ttfb_timeout_s is None
