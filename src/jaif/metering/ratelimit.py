"""Per-key requests-per-minute and tokens-per-minute limits in fixed one-minute windows.

Two shared sources of truth, so that limits hold across every gateway process: Redis (an atomic Lua
script) where ``JAIF_REDIS_URL`` is set, else the database (one conditional upsert). Keys without
limits never reach either.

``OutageTolerant`` wraps either store for the Meter. While the store cannot be reached
(jaif/dependencies.py), ``metering.ratelimit_on_outage`` chooses: "local" (the default) counts in this
process's own windows (``LocalWindows``), which is approximate: each process enforces the whole limit
on its own and starts from zero, so with N processes a key may get up to N times its limit (plus what
it had used of the minute before); "refuse" answers 503 (DependencyUnavailable) to every request of a
key with a limit. Once the outage is known, requests do not wait for the store: they go to the local
windows (or are refused) until the runtime's check finds it back.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import and_, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from jaif.db.engine import transaction
from jaif.dependencies import DependencyHealth, outage_of, unavailable
from jaif.errors import RateLimited
from jaif.metering.models import RateWindow

WINDOW_S = 60


def _window(now: float) -> tuple[int, float]:
    start = int(now // WINDOW_S) * WINDOW_S
    return start, start + WINDOW_S - now


def _refuse(rpm: int | None, tpm: int | None, tokens: int, retry_after: float) -> RateLimited:
    if tpm is not None and tokens > tpm:
        return RateLimited(
            f"This request may use {tokens} tokens, more than this key's limit of {tpm} tokens per minute. "
            "Lower max_tokens.",
            retry_after=retry_after,
        )
    return RateLimited(
        f"Rate limit reached for this API key ({rpm or '-'} requests, {tpm or '-'} tokens per minute). "
        f"Try again in {retry_after:.0f} s.",
        retry_after=max(1.0, retry_after),
    )


class RateLimiter(Protocol):
    async def acquire(self, key_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> None: ...

    async def adjust(self, key_id: str, *, tokens: int) -> None: ...

    async def aclose(self) -> None: ...


_LUA_ACQUIRE = """
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
if (rpm > 0 and r + 1 > rpm) or (tpm > 0 and t + tokens > tpm) then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HINCRBY', KEYS[1], 't', tokens)
redis.call('EXPIRE', KEYS[1], 120)
return 1
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        # Bounded waits: a Redis host that does not answer must not hold requests (dependencies.py).
        self._redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._acquire = self._redis.register_script(_LUA_ACQUIRE)
        self._windows: dict[str, int] = {}

    async def acquire(self, key_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> None:
        start, retry_after = _window(time.time())
        ok = await self._acquire(keys=[f"jaif:rl:{key_id}:{start}"], args=[rpm or 0, tpm or 0, tokens])
        if not ok:
            raise _refuse(rpm, tpm, tokens, retry_after)
        self._windows[key_id] = start

    async def adjust(self, key_id: str, *, tokens: int) -> None:
        start = self._windows.get(key_id)
        if start is not None and tokens:
            key = f"jaif:rl:{key_id}:{start}"
            # With its expiry again: a request that outlived the window's key (a long stream) would
            # otherwise create a key that never expires.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "t", tokens)
                pipe.expire(key, 120)
                await pipe.execute()

    async def aclose(self) -> None:
        await self._redis.aclose()


class DatabaseRateLimiter:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._windows: dict[str, int] = {}

    async def acquire(self, key_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> None:
        start, retry_after = _window(time.time())
        ok = await asyncio.to_thread(self._acquire_sync, key_id, start, rpm, tpm, tokens)
        if not ok:
            raise _refuse(rpm, tpm, tokens, retry_after)
        self._windows[key_id] = start

    def _acquire_sync(self, key_id: str, start: int, rpm: int | None, tpm: int | None, tokens: int) -> bool:
        if (tpm is not None and tokens > tpm) or (rpm is not None and rpm < 1):
            return False
        with transaction(self._factory) as session:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            table = RateWindow.__table__
            stmt = dialect.insert(table).values(api_key_id=key_id, window_start=start, requests=1, tokens=tokens)
            conditions = []
            if rpm is not None:
                conditions.append(table.c.requests + 1 <= rpm)
            if tpm is not None:
                conditions.append(table.c.tokens + tokens <= tpm)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.api_key_id, table.c.window_start],
                set_={"requests": table.c.requests + 1, "tokens": table.c.tokens + tokens},
                where=and_(*conditions) if conditions else None,
            ).returning(table.c.requests)
            ok = session.execute(stmt).first() is not None
            # Old windows are useless; drop them now and then (cheap, indexed by primary key).
            if start % 600 == 0:
                session.execute(delete(RateWindow).where(RateWindow.window_start < start - WINDOW_S))
            return ok

    async def adjust(self, key_id: str, *, tokens: int) -> None:
        start = self._windows.get(key_id)
        if start is None or not tokens:
            return

        def _adjust() -> None:
            with transaction(self._factory) as session:
                session.execute(
                    update(RateWindow)
                    .where(RateWindow.api_key_id == key_id, RateWindow.window_start == start)
                    .values(tokens=RateWindow.tokens + tokens)
                )

        await asyncio.to_thread(_adjust)

    async def aclose(self) -> None:
        return None


class LocalWindows:
    """This process's own fixed windows: the limiter while the shared store is unreachable."""

    def __init__(self) -> None:
        self._windows: dict[str, list[int]] = {}  # key id -> [window start, requests, tokens]

    def acquire(self, key_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> None:
        start, retry_after = _window(time.time())
        window = self._windows.get(key_id)
        if window is None or window[0] != start:
            if len(self._windows) >= 50_000:
                self._windows.clear()
            window = self._windows[key_id] = [start, 0, 0]
        if (rpm is not None and window[1] + 1 > rpm) or (tpm is not None and window[2] + tokens > tpm):
            raise _refuse(rpm, tpm, tokens, retry_after)
        window[1] += 1
        window[2] += tokens

    def adjust(self, key_id: str, *, tokens: int) -> None:
        window = self._windows.get(key_id)
        if window is not None:
            window[2] += tokens


class OutageTolerant:
    """A RateLimiter over ``store`` that keeps its promise while the store (``dependency``: "redis" or
    "database") is down: ``on_outage`` "local" counts in LocalWindows, "refuse" raises 503."""

    def __init__(
        self, store: RateLimiter, *, dependency: str, health: DependencyHealth, on_outage: str = "local"
    ) -> None:
        self.store = store
        self._dependency = dependency
        self._health = health
        self._on_outage = on_outage
        self._local = LocalWindows()

    async def acquire(self, key_id: str, *, rpm: int | None, tpm: int | None, tokens: int) -> None:
        if not self._health.is_down(self._dependency):
            try:
                await self._twice(self.store.acquire, key_id, rpm=rpm, tpm=tpm, tokens=tokens)
                return
            except Exception as exc:
                if outage_of(exc) != self._dependency:
                    raise
                self._health.failed(self._dependency, exc)
        if self._on_outage == "refuse":
            self._health.affected(self._dependency, refused=True)
            raise unavailable(self._dependency)
        self._health.affected(self._dependency, refused=False)
        self._local.acquire(key_id, rpm=rpm, tpm=tpm, tokens=tokens)

    async def adjust(self, key_id: str, *, tokens: int) -> None:
        """Best effort: while the store is down the correction goes to the local window only."""
        if not self._health.is_down(self._dependency):
            try:
                await self._twice(self.store.adjust, key_id, tokens=tokens)
                return
            except Exception as exc:
                if outage_of(exc) != self._dependency:
                    raise
                self._health.failed(self._dependency, exc)
        self._local.adjust(key_id, tokens=tokens)

    async def _twice(self, call: Callable[..., Awaitable[None]], key_id: str, **kwargs: Any) -> None:
        """``call``, and once more if the store was unreachable: after a restart of Redis, the first use
        of each pooled connection fails although the server answers again."""
        try:
            await call(key_id, **kwargs)
        except Exception as exc:
            # Not after a timeout: the script may have run and only its answer been slow (counted twice).
            if outage_of(exc) != self._dependency or _timed_out(exc):
                raise
            await call(key_id, **kwargs)

    async def aclose(self) -> None:
        await self.store.aclose()


def _timed_out(exc: BaseException) -> bool:
    redis = sys.modules.get("redis.exceptions")
    return redis is not None and isinstance(exc, redis.TimeoutError)
