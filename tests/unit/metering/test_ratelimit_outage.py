"""metering/ratelimit.py's OutageTolerant over the real Redis limiter pointed at a port where nothing
listens: "local" counts in the process's own window (which still limits), "refuse" answers 503."""

from __future__ import annotations

import pytest

from jaif.dependencies import REDIS, DependencyHealth
from jaif.errors import DependencyUnavailable, RateLimited
from jaif.metering.ratelimit import OutageTolerant, RedisRateLimiter
from tests.support.procs import free_port


def limiter(mode: str) -> tuple[OutageTolerant, DependencyHealth]:
    health = DependencyHealth([REDIS])
    store = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    return OutageTolerant(store, dependency=REDIS, health=health, on_outage=mode), health


async def test_local_mode_limits_in_the_process_window():
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
