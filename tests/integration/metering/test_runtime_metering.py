"""A running Runtime (what `jaif serve` runs) drives its Meter only through tick() and close(): leases
kept alive by heartbeats, expired ones of a vanished process reclaimed in the background, everything
flushed and given back on stop, a flush in flight finished before stop returns."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from jaif.config import Settings
from jaif.db.engine import make_engine
from jaif.runtime import Runtime
from tests.integration.metering.conftest import outcome, principal, try_reserve


def _settings(url: str, **metering) -> Settings:
    return Settings(
        database_url=url,
        redis_url=None,
        inference={"builtin_models": False},
        metering={"flush_interval_s": 0.05, **metering},
    )


async def test_a_live_holders_heartbeat_keeps_its_lease_and_stop_returns_it(db):
    project = db.project(1000)
    runtime = Runtime(_settings(db.url, lease_tokens=400, lease_ttl_s=0.4, lease_idle_return_s=60))
    await runtime.start()
    try:
        ticket = await runtime.meter.admit(principal(project), tokens=100)
        await runtime.meter.finish(ticket)
        assert db.books(project).leased == 250  # a quarter of what is left
        other = db.proc(lease_ttl_s=0.4)
        for _ in range(4):  # four lease lifetimes: only heartbeats keep it
            await asyncio.sleep(0.3)
            await other.reclaim()
            assert db.books(project).leased == 250
        books = db.books(project)
        books.check()
        assert (books.leased, books.lease_rows) == (250, 1)
        assert await try_reserve(other, project, 751) is None
    finally:
        await runtime.stop()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (0, 0, 0)


async def test_a_running_gateway_reclaims_a_vanished_holders_lease(db):
    project = db.project(1000)
    gone = db.proc(lease_tokens=1000, lease_ttl_s=0.3)
    await gone.reserve(project, 100)
    assert db.books(project).leased == 250
    runtime = Runtime(_settings(db.url, lease_ttl_s=0.3))
    await runtime.start()
    try:
        # Reclaimed in the background (every other heartbeat), without any request asking for it.
        for _ in range(40):
            await asyncio.sleep(0.05)
            if db.books(project).leased == 0:
                break
        books = db.books(project)
        books.check()
        assert (books.leased, books.lease_rows) == (0, 0)
    finally:
        await runtime.stop()


async def test_a_running_gateway_flushes_usage_in_the_background(db):
    project = db.project(10_000)
    runtime = Runtime(_settings(db.url))
    await runtime.start()
    try:
        for used in (10, 20):
            await runtime.meter.finish(await runtime.meter.admit(principal(project), tokens=100), outcome(used))
        for _ in range(40):
            await asyncio.sleep(0.05)
            if db.books(project).records == 2:
                break
        books = db.books(project)
        books.check()
        assert (books.records, books.spent) == (2, 30)
    finally:
        await runtime.stop()
    assert db.books(project).leased == 0


async def test_stop_waits_for_a_flush_in_flight(db):
    """Runtime.stop cancels the background tick; a flush caught writing must finish (or put its batch
    back) before stop returns. `jaif serve` exits right after stop by re-raising SIGTERM, which kills
    any thread still writing: its batch, records and spend, would be lost."""
    if not db.url.startswith("postgresql"):
        pytest.skip("needs a row lock that holds up the usage writer alone (PostgreSQL; SQLite has one writer)")
    project = db.project(None)
    runtime = Runtime(_settings(db.url))
    await runtime.start()
    blocker = make_engine(db.url)
    conn = blocker.connect()
    stopping = None
    try:
        conn.execute(text("SELECT id FROM projects WHERE id = :p FOR UPDATE"), {"p": project})
        for _ in range(5):
            ticket = await runtime.meter.admit(principal(project, has_quota=False), tokens=10)
            await runtime.meter.finish(ticket, outcome(10))
        await asyncio.sleep(0.3)  # the background flush is writing now, held up by the lock
        stopping = asyncio.create_task(runtime.stop())
        await asyncio.sleep(0.5)
        assert not stopping.done(), "stop() returned while a flush was still writing"
    finally:
        conn.rollback()
        conn.close()
        blocker.dispose()
        if stopping is not None:
            await stopping
    books = db.books(project)
    assert (books.records, books.spent) == (5, 50)
