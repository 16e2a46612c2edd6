"""The rate limiters against real stores: the database (SQLite; PostgreSQL where JAIF_TEST_DATABASE_URL
is set) and Redis (where JAIF_TEST_REDIS_URL is set). Two limiter objects with their own connections
stand for two gateway processes: the counts are shared and exact under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from jaif.db.engine import make_engine, make_session_factory
from jaif.db.migrate import upgrade
from jaif.errors import RateLimited
from jaif.metering.ratelimit import DatabaseRateLimiter, RedisRateLimiter
from tests.support import databases
from tests.support.metered import avoid_window_edge, redis_url

STORES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORES)
async def limiters(request, tmp_path):
    """A factory of limiters ("processes") of one kind on one shared store."""
    made, engines = [], []
    database_url = None
    if request.param == "redis":
        url = redis_url()

        def make():
            made.append(RedisRateLimiter(url))
            return made[-1]
    else:
        if request.param == "sqlite":
            database_url = f"sqlite:///{tmp_path / 'jaif.db'}"
        else:
            if reason := databases.postgres_reason():
                pytest.skip(reason)
            database_url = databases.create_postgres_database()
        upgrade(database_url)

        def make():
            engines.append(make_engine(database_url))
            made.append(DatabaseRateLimiter(make_session_factory(engines[-1])))
            return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()
    for engine in engines:
        engine.dispose()
    if request.param == "postgres":
        databases.drop_postgres_database(database_url)


async def _admitted(limiter, key: str, *, rpm=None, tpm=None, tokens=1) -> bool:
    try:
        await limiter.acquire(key, rpm=rpm, tpm=tpm, tokens=tokens)
    except RateLimited as exc:
        assert exc.retry_after is not None and exc.retry_after > 0
        return False
    return True


async def test_requests_per_minute_are_exact_across_processes(limiters):
    a, b = limiters(), limiters()
    key = uuid.uuid4().hex
    avoid_window_edge()
    got = await asyncio.gather(*(_admitted(p, key, rpm=10) for _ in range(25) for p in (a, b)))
    assert sum(got) == 10
    other = uuid.uuid4().hex  # limits are per key
    assert await _admitted(a, other, rpm=10)


async def test_tokens_per_minute_count_reservations_then_what_was_used(limiters):
    a, b = limiters(), limiters()
    key = uuid.uuid4().hex
    avoid_window_edge()
    got = await asyncio.gather(*(_admitted(p, key, tpm=100, tokens=30) for _ in range(5) for p in (a, b)))
    assert sum(got) == 3  # 90 of 100 reserved
    # Each admitted request used 10 of its 30: the window gives back 20 each, 60 in all.
    for limiter, admitted in zip((a, b) * 5, got, strict=True):
        if admitted:
            await limiter.adjust(key, tokens=-20)
    got = await asyncio.gather(*(_admitted(p, key, tpm=100, tokens=30) for _ in range(3) for p in (a, b)))
    assert sum(got) == 2  # 30 used + 60 reserved
    # A request that may use more than a whole minute's tokens is refused outright, saying why.
    with pytest.raises(RateLimited, match="more than this key's limit of 100 tokens per minute"):
        await a.acquire(uuid.uuid4().hex, rpm=None, tpm=100, tokens=101)


@pytest.mark.redis
async def test_a_late_adjustment_does_not_leave_a_redis_key_without_expiry():
    """A stream may outlive its window's Redis key (120 s); adjusting it afterwards must not create a
    key that never expires (one leaked key per long request)."""
    url = redis_url()
    limiter = RedisRateLimiter(url)
    raw = aioredis.from_url(url)
    key = uuid.uuid4().hex
    try:
        await limiter.acquire(key, rpm=10, tpm=1000, tokens=100)
        [window] = await raw.keys(f"jaif:rl:{key}:*")
        assert 0 < await raw.ttl(window) <= 120
        await raw.delete(window)  # expired while the request ran
        await limiter.adjust(key, tokens=-60)
        assert 0 < await raw.ttl(window) <= 120
    finally:
        for window in await raw.keys(f"jaif:rl:{key}:*"):
            await raw.delete(window)
        await raw.aclose()
        await limiter.aclose()
