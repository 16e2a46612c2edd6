"""The time limits of one exchange with a replica (backends/deadline.py), and their settings."""

from __future__ import annotations

import asyncio

import pytest

from jaif.config import InferenceSettings
from jaif.inference.backends.deadline import Deadline, Timeouts, Watch
from jaif.inference.backends.transport import TransportError


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
    async def passing() -> bool:
        return True

    await waits(start(Timeouts(ttfb_s=0.05, idle_s=10, total_s=10), passing), 0.3)


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
