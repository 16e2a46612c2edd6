"""Whether the gateway's dependencies (the database, Redis) answer, and what an outage looks like.

``outage_of(exc)`` tells a dependency that cannot be reached (a refused or broken connection, a
timeout) from every other error (a bug, a constraint): "database", "redis" or None. The code that
talks to a dependency translates such an error at its edge into ``DependencyUnavailable`` (503, with
Retry-After) or serves from what it has (inference/keys.py, metering/ratelimit.py, metering/meter.py).

``DependencyHealth`` (one per process, on the runtime) holds each dependency's state and writes the
log of an outage: one line when it starts, at most one line every ``report_every_s`` while it lasts
(with how many requests were served from what the process had and how many were refused), one line
when it ends; never a traceback per request. While a dependency is down the runtime checks it every
``CHECK_INTERVAL_S`` (``check_database``, ``check_redis``): that check alone declares it back.
/healthz shows the states and /metrics the gauge ``jaif_dependency_up`` (ops/).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy import exc as sa

from jaif.errors import DependencyUnavailable

log = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
CHECK_INTERVAL_S = 1.0  # how often a dependency that is down is checked
REPORT_EVERY_S = 10.0  # at most one "still down" line this often
RETRY_AFTER_S = 5.0  # what a 503 for an unreachable dependency tells the client

# PostgreSQL's SQLSTATEs that mean the server is going away or cannot take a connection (besides class 08,
# connection exceptions): admin/crash shutdown, cannot connect now, too many connections.
_PG_OUTAGE_STATES = ("57P01", "57P02", "57P03", "53300")
# SQLite's OperationalErrors that mean the file cannot be used (not "database is locked", not a bad query).
_SQLITE_OUTAGES = ("unable to open", "disk i/o error", "database disk image is malformed", "readonly database")


def outage_of(exc: BaseException) -> str | None:
    """"database" or "redis" when ``exc`` (or what caused it) says that the dependency cannot be
    reached; None for every other error, which stays a bug to log with its traceback."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 4:
        name = _classify(current)
        if name is not None:
            return name
        current = current.__cause__
        seen += 1
    return None


def _classify(exc: BaseException) -> str | None:
    if isinstance(exc, sa.DBAPIError):
        # A deadlock, a serialization failure, a statement timeout or a busy SQLite file is an error of
        # this request (an OperationalError too), not an outage: only a lost or refused connection is.
        if exc.connection_invalidated or _driver_outage(exc.orig):
            return DATABASE
        return None
    if isinstance(exc, sa.DisconnectionError | sa.TimeoutError) or _driver_outage(exc):  # TimeoutError: the pool's
        return DATABASE
    redis = sys.modules.get("redis.exceptions")
    if redis is not None and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return REDIS
    return None


def _driver_outage(exc: BaseException | None) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return any(words in str(exc).lower() for words in _SQLITE_OUTAGES)
    psycopg = sys.modules.get("psycopg")  # never imported: none of its errors can occur
    if psycopg is None:
        return False
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate  # None: the connection itself failed (refused, reset, timed out)
        return state is None or state.startswith("08") or state in _PG_OUTAGE_STATES
    return False


def unavailable(name: str) -> DependencyUnavailable:
    """The 503 for a request that cannot be served while ``name`` is down."""
    what = {DATABASE: "its database", REDIS: "Redis"}.get(name, name)
    return DependencyUnavailable(
        f"The gateway cannot reach {what} and cannot serve this request now; try again shortly.",
        retry_after=RETRY_AFTER_S,
    )


class _Gauge(Protocol):
    def labels(self, *values: str) -> _GaugeChild: ...


class _GaugeChild(Protocol):
    def set(self, value: float) -> None: ...


@dataclass
class _State:
    down_since: float | None = None
    reported_at: float = 0.0
    served: int = 0  # requests served from what the process had, since the last line
    refused: int = 0  # requests refused with 503, since the last line
    served_total: int = 0
    refused_total: int = 0


class DependencyHealth:
    """The state of each named dependency ("ok" or "down") and the log of its outages. Used on the
    event loop only."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        gauge: _Gauge | None = None,
        report_every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._states = {name: _State() for name in names}
        self._gauge = gauge
        self._report_every_s = report_every_s
        self._clock = clock
        for name in self._states:
            self._set_gauge(name, 1)

    def is_down(self, name: str) -> bool:
        state = self._states.get(name)
        return state is not None and state.down_since is not None

    def states(self) -> dict[str, str]:
        """Each dependency's state: "ok" or "down"."""
        return {name: "down" if state.down_since is not None else "ok" for name, state in self._states.items()}

    def down(self) -> list[str]:
        return [name for name, state in self._states.items() if state.down_since is not None]

    def failed(self, name: str, exc: BaseException | str) -> None:
        """``name`` failed to answer: the first failure starts an outage (one line in the log)."""
        state = self._states.setdefault(name, _State())
        now = self._clock()
        if state.down_since is None:
            state.down_since = state.reported_at = now
            state.served = state.refused = state.served_total = state.refused_total = 0
            self._set_gauge(name, 0)
            log.error(
                "%s unavailable (%s): serving what this process has, refusing the rest with 503 until it is back",
                name,
                _describe(exc),
            )
        else:
            self._report(name, state, now)

    def affected(self, name: str, *, refused: bool) -> None:
        """A request met the outage of ``name``: served from what the process had, or refused (503)."""
        state = self._states.setdefault(name, _State())
        if refused:
            state.refused += 1
            state.refused_total += 1
        else:
            state.served += 1
            state.served_total += 1
        if state.down_since is not None:
            self._report(name, state, self._clock())

    def recovered(self, name: str) -> None:
        """``name`` answers again: ends its outage (one line in the log)."""
        state = self._states.get(name)
        if state is None or state.down_since is None:
            return
        lasted = self._clock() - state.down_since
        log.warning(
            "%s is back after %.1f s; during the outage %d requests were served from what this process had "
            "and %d refused with 503",
            name,
            lasted,
            state.served_total,
            state.refused_total,
        )
        state.down_since = None
        state.served = state.refused = 0
        self._set_gauge(name, 1)

    def _report(self, name: str, state: _State, now: float) -> None:
        if state.down_since is None or now - state.reported_at < self._report_every_s:
            return
        log.warning(
            "%s still unavailable (%.0f s): %d requests served from what this process had, %d refused with 503 "
            "in the last %.0f s",
            name,
            now - state.down_since,
            state.served,
            state.refused,
            now - state.reported_at,
        )
        state.reported_at = now
        state.served = state.refused = 0

    def _set_gauge(self, name: str, value: int) -> None:
        if self._gauge is not None:
            self._gauge.labels(name).set(value)


def _describe(exc: BaseException | str) -> str:
    """The error's first line, without its traceback: 'OperationalError: connection refused'."""
    if isinstance(exc, str):
        return exc
    origin = getattr(exc, "orig", None) or exc
    first = (str(origin).strip().splitlines() or [""])[0]
    return f"{type(origin).__name__}: {first[:200]}"


def check_database(engine: Engine) -> None:
    """Raises unless the database answers a trivial query (blocking: run it in a thread)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def check_redis(url: str) -> None:
    """Raises unless Redis answers a PING."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()
