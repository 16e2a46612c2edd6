"""metering/ratelimit.py's OutageTolerant over the real Redis limiter pointed at a port where nothing
listens: "local" counts in the process's own window (which still limits), "refuse" answers 503."""

from __future__ import annotations

import pytest
import redis

from jaif.dependencies import REDIS, DependencyHealth
from jaif.errors import DependencyUnavailable, RateLimited
from jaif.metering.ratelimit import OutageTolerant, RedisRateLimiter
from tests.support.metered import avoid_window_edge
from tests.support.procs import free_port


def limiter(mode: str) -> tuple[OutageTolerant, DependencyHealth]:
    health = DependencyHealth([REDIS])
    store = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    return OutageTolerant(store, dependency=REDIS, health=health, on_outage=mode), health


async def test_local_mode_limits_in_the_process_window():
    avoid_window_edge()  # the local windows are fixed minutes: a new one would reset the count mid-test
    tolerant, health = limiter("local")
    try:
        for _ in range(3):
            await tolerant.acquire("k", rpm=3, tpm=None, tokens=10)
        assert health.is_down(REDIS)
        with pytest.raises(RateLimited):
            await tolerant.acquire("k", rpm=3, tpm=None, tokens=10)
        await tolerant.adjust("k", tokens=-5)  # best effort, into the local window: no error
        await tolerant.acquire("other", rpm=3, tpm=20, tokens=10)
        await tolerant.adjust("other", tokens=-10)
        await tolerant.acquire("other", rpm=3, tpm=20, tokens=20)  # the correction counted: 0 + 20 <= 20
    finally:
        await tolerant.aclose()


async def test_refuse_mode_answers_503():
    tolerant, health = limiter("refuse")
    try:
        for _ in range(2):  # the first finds Redis gone, the second does not wait for it
            with pytest.raises(DependencyUnavailable) as refused:
                await tolerant.acquire("k", rpm=3, tpm=None, tokens=10)
            assert refused.value.status == 503 and refused.value.retry_after
        assert health.is_down(REDIS)
    finally:
        await tolerant.aclose()


async def test_a_timed_out_call_is_not_tried_twice():
    """A timeout may come after Redis ran the script (only the answer was slow): trying again would count
    the request twice. A broken connection is tried again once (after a restart of Redis)."""
    tolerant, _health = limiter("refuse")
    calls = []

    async def slow(key_id: str, **kwargs) -> None:
        calls.append(key_id)
        raise redis.TimeoutError("Timeout reading from socket")

    async def broken(key_id: str, **kwargs) -> None:
        calls.append(key_id)
        raise redis.ConnectionError("Connection closed by server.")

    try:
        with pytest.raises(redis.TimeoutError):
            await tolerant._twice(slow, "k")
        assert calls == ["k"]
        with pytest.raises(redis.ConnectionError):
            await tolerant._twice(broken, "k2")
        assert calls == ["k", "k2", "k2"]
    finally:
        await tolerant.aclose()
