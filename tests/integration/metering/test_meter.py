"""The metering owner (metering/meter.py) against a real, migrated database: admit, finish, tick and
close of one or several gateway "processes" (tests/integration/metering/conftest.py), and what the
quota books must say after each."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaif.config import MeteringSettings
from jaif.errors import RateLimited
from jaif.metering import quota as quota_module
from jaif.metering.meter import Meter, this_host
from tests.integration.metering.conftest import Proc, entry, outcome, principal, try_reserve
from tests.support.metered import avoid_window_edge


async def test_concurrent_reservations_never_exceed_the_quota(db):
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    got = await asyncio.gather(*(try_reserve(proc, project, 100) for _ in range(300)))
    held = [r for r in got if r is not None]
    # Leases are taken a slice at a time; the whole allowance is leasable, so exactly 100 fit.
    assert len(held) == 100
    books = db.books(project)
    books.check()
    assert books.leased == 10_000 and books.spent == 0

    refused = await try_reserve(proc, project, 1)
    assert refused is None
    for r in held:
        await proc.finish(r, 0)
    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows, books.records) == (0, 0, 0, 100)


async def test_settle_returns_what_was_not_used_and_flush_spends_the_rest_once(db):
    project = db.project(1000)
    proc = db.proc(lease_tokens=1000)
    first = await proc.reserve(project, 400)
    second = await proc.reserve(project, 400)
    leased = db.books(project).leased
    assert leased >= 800
    # 300 more do not fit beside 800 reserved of 1000 ... until the first settles at 150 of its 400.
    assert await try_reserve(proc, project, 300) is None
    await proc.finish(first, 150)
    third = await proc.reserve(project, 300)
    leased = db.books(project).leased
    await proc.finish(second, 400)
    await proc.finish(third, 7)

    books = db.books(project)
    assert books.spent == 0 and books.records == 0  # nothing is spent before the writer flushes
    assert await proc.meter.ledger.flush() == 3
    books = db.books(project)
    books.check()
    assert books.spent == 557 == books.record_tokens and books.records == 3
    assert books.leased == leased - 557
    await proc.meter.tick()  # a second flush charges nothing again
    assert db.books(project).spent == 557

    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (557, 0, 0)


async def _worker(proc: Proc, project_id: str, rounds: int, used: list[int]) -> None:
    rng = random.Random()
    for _ in range(rounds):
        ticket = await try_reserve(proc, project_id, 100)
        await asyncio.sleep(rng.random() / 500)
        if ticket is not None:
            n = rng.randint(1, 100)
            await proc.finish(ticket, n)
            used.append(n)


async def _housekeeping(proc: Proc, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await proc.meter.tick()
        await asyncio.sleep(0.01)


async def test_two_processes_on_one_database_cannot_overspend(db):
    quota = 20_000
    project = db.project(quota)
    procs = [db.proc(lease_tokens=800, idle_return_s=0.01) for _ in range(2)]
    used: list[int] = []
    stop = asyncio.Event()
    keepers = [asyncio.create_task(_housekeeping(p, stop)) for p in procs]
    await asyncio.gather(*(_worker(p, project, 25, used) for p in procs for _ in range(20)))
    stop.set()
    await asyncio.gather(*keepers)
    for p in procs:
        await p.meter.close()

    books = db.books(project)
    books.check()
    assert sum(used) > quota // 2, "the test should run the allowance down"
    assert books.spent == sum(used) == books.record_tokens <= quota
    assert books.records == len(used)
    assert (books.leased, books.lease_rows) == (0, 0)


async def test_two_processes_reserving_at_once_share_the_allowance_exactly(db):
    project = db.project(10_000)
    a, b = db.proc(lease_tokens=700), db.proc(lease_tokens=700)
    got = await asyncio.gather(*(try_reserve(p, project, 100) for _ in range(150) for p in (a, b)))
    held = [r for r in got if r is not None]
    books = db.books(project)
    books.check()
    # Each process may be left with less than one reservation's worth unreserved in its slice.
    assert 98 <= len(held) <= 100
    assert books.quota - books.leased < 100  # what nobody leased is less than one reservation


async def test_a_slice_used_up_fast_makes_the_next_grant_larger_and_slow_use_shrinks_it(db):
    """A busy project must not cost a lease transaction per few hundred requests: while slices go
    within GROW_WITHIN_S, each grant doubles (up to MAX_GROWTH x lease_tokens, at most a quarter of
    what is left); after a pause the next grant is lease_tokens again."""
    project = db.project(10_000_000)
    proc = db.proc(lease_tokens=100)
    leases = proc.meter.quota._leases

    async def next_grant() -> int:
        """Reserve one token more than the slice holds (a grant of one more at least), settle at 0."""
        lease = leases.get(project)
        before = db.books(project).leased
        await proc.finish(await proc.reserve(project, (lease.available if lease else 0) + 1), 0)
        return db.books(project).leased - before

    grants = [await next_grant() for _ in range(9)]
    assert grants == [100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]  # MAX_GROWTH = 64
    assert quota_module.MAX_GROWTH == 64
    leases[project].granted_at -= quota_module.GROW_WITHIN_S * 10  # a long pause
    assert await next_grant() == 100
    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert books.leased == 0


async def test_tick_flushes_usage_and_gives_back_idle_leases(db):
    project = db.project(100_000)
    # Idle after 1 s: long enough that the first tick below never finds the lease idle on a loaded machine.
    proc = db.proc(lease_tokens=5000, idle_return_s=1.0)
    ticket = await proc.reserve(project, 100)
    assert db.books(project).leased == 5000
    await proc.finish(ticket, 40)
    books = db.books(project)
    assert (books.spent, books.leased, books.records) == (0, 5000, 0)  # used, not flushed yet: still leased
    await proc.meter.tick()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.records) == (40, 4960, 1)  # flushed; just used: not idle yet

    await asyncio.sleep(1.1)
    await proc.meter.tick()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (40, 0, 0)  # idle: given back, its row deleted

    # The slice is taken again when needed.
    again = await proc.reserve(project, 100)
    await proc.finish(again, 100)
    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (140, 0, 0)


async def test_a_vanished_holders_lease_counts_as_spent_until_it_expires(db):
    project = db.project(1000)
    gone = db.proc(lease_tokens=1000, lease_ttl_s=0.5)
    await gone.reserve(project, 250)
    leased = db.books(project).leased
    assert leased >= 250
    # The process dies here: no flush, no give-back.

    survivor = db.proc(lease_tokens=1000, lease_ttl_s=0.5)
    assert await try_reserve(survivor, project, 1001 - leased) is None
    await survivor.reclaim()
    assert db.books(project).leased == leased  # not expired yet: not reclaimed
    await asyncio.sleep(0.6)
    # Expired: reclaimed on demand when the survivor needs the tokens ...
    ticket = await survivor.reserve(project, 1000)
    books = db.books(project)
    books.check()
    assert (books.leased, books.lease_rows) == (1000, 1)
    await survivor.finish(ticket, 10)
    await survivor.meter.close()
    books = db.books(project)
    assert (books.spent, books.leased, books.lease_rows) == (10, 0, 0)


async def test_a_dead_processs_leases_are_reclaimed_by_any_processs_tick(db):
    project = db.project(1000)
    gone = db.proc(lease_tokens=300, lease_ttl_s=0.3)
    await gone.reserve(project, 100)
    other = db.project(1000)
    await gone.reserve(other, 100)
    assert db.books(project).leased == db.books(other).leased == 250  # a quarter of each allowance
    survivor = db.proc(lease_ttl_s=0.3)
    await asyncio.sleep(0.4)
    await survivor.meter.tick()
    assert db.books(project).leased == 250  # the first tick heartbeats; every second one reclaims
    await survivor.meter.tick()
    for p in (project, other):
        books = db.books(p)
        books.check()
        assert (books.leased, books.lease_rows) == (0, 0)


def ended_process(*, reaped: bool) -> subprocess.Popen:
    """A process of this host that has ended: reaped by its parent (this one), or a zombie not reaped
    yet (the parent's wait() comes later, as a supervisor's may)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    if reaped:
        proc.wait(30)
    else:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not end"
            time.sleep(0.02)
    return proc


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
async def test_the_lease_of_a_process_of_this_host_that_ended_is_reclaimed_long_before_it_expires(db, reaped):
    """Issue 11: a SIGKILLed process's lease counted as leased until it expired (about 95 s). A process
    on the same host (and pid namespace) can tell from the holder's pid that it is gone."""
    project = db.project(1000)
    ended = ended_process(reaped=reaped)
    try:
        gone = db.proc(lease_tokens=300, lease_ttl_s=60, holder=f"{this_host()}:{ended.pid}:0badcafe")
        await gone.reserve(project, 100)
        assert db.books(project).leased == 250  # a quarter of the allowance
        survivor = db.proc(lease_ttl_s=60)
        await survivor.reclaim()  # 60 s leases: nothing has expired
        books = db.books(project)
        books.check()
        assert (books.leased, books.lease_rows) == (0, 0)
    finally:
        ended.wait(30)


async def test_a_survivor_that_needs_the_tokens_reclaims_an_ended_processs_lease_at_once(db):
    project = db.project(1000)
    ended = ended_process(reaped=True)
    gone = db.proc(lease_tokens=1000, lease_ttl_s=60, holder=f"{this_host()}:{ended.pid}:0badcafe")
    await gone.reserve(project, 900)
    survivor = db.proc(lease_tokens=1000, lease_ttl_s=60)
    ticket = await survivor.reserve(project, 1000)  # no tick: reclaimed on demand
    books = db.books(project)
    books.check()
    assert (books.leased, books.lease_rows) == (1000, 1)
    await survivor.finish(ticket, 10)
    await survivor.meter.close()
    assert (db.books(project).spent, db.books(project).leased) == (10, 0)


async def test_leases_of_live_processes_and_of_other_hosts_wait_for_their_expiry(db):
    """A holder this process cannot tell is gone keeps its lease until it expires: a live process of
    this host, a process of another host (whatever its pid), this process's own pid under another name."""
    project = db.project(10_000)
    ended = ended_process(reaped=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holders = [
            f"{this_host()}:{live.pid}:0badcafe",
            f"elsewhere.example:{ended.pid}:0badcafe",
            f"{this_host()}:{os.getpid()}:0badcafe",
        ]
        for holder in holders:
            await db.proc(lease_tokens=300, lease_ttl_s=60, holder=holder).reserve(project, 100)
        leased = db.books(project).leased
        survivor = db.proc(lease_ttl_s=60)
        await survivor.reclaim()
        books = db.books(project)
        assert (books.leased, books.lease_rows) == (leased, 3)
    finally:
        live.kill()
        live.wait(30)


async def test_a_holder_whose_lease_was_reclaimed_does_not_spend_it(db):
    """A live process that missed its heartbeats (database unreachable for longer than the lease
    lifetime) loses its lease to another process's reclaim. Once it reaches the database again it
    must not go on reserving from the slice it remembers: nobody counts those tokens as leased."""
    quota = 1000
    project = db.project(quota)
    late = db.proc(lease_tokens=1000, lease_ttl_s=0.3)
    await late.finish(await late.reserve(project, 100), 0)  # holds a slice of 250, nothing in flight
    await asyncio.sleep(0.4)
    other = db.proc(lease_tokens=1000, lease_ttl_s=60)
    await other.reclaim()
    assert db.books(project).leased == 0
    taken = []
    while (r := await try_reserve(other, project, 100)) is not None:
        taken.append(r)
    assert len(taken) == 10
    await late.meter.tick()  # the late process is back: its next heartbeat finds its lease gone
    more = []
    while (r := await try_reserve(late, project, 100)) is not None:
        more.append(r)
    assert more == []
    for r in taken:
        await other.finish(r, 100)
    await other.meter.close()
    await late.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (1000, 0, 0)


async def test_reserve_now_draws_on_the_slice_in_hand_and_leaves_the_rest_to_reserve(db):
    """The gateway's fast path: no database, no waiting; None whenever only reserve() can answer."""
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    quota = proc.meter.quota
    assert quota.reserve_now(project, True, 100) is None  # no slice yet
    first = await proc.reserve(project, 100)  # leases a slice of 1000
    fast = quota.reserve_now(project, True, 800)
    assert fast is not None and fast.leased and fast.lease_id == first.reservation.lease_id
    assert quota.reserve_now(project, True, 101) is None  # 100 left in the slice
    unlimited = quota.reserve_now(project, False, 10**9)
    assert unlimited is not None and not unlimited.leased
    # The gateway's reservations end through Meter.finish; these two are settled and recorded by hand.
    quota.settle(fast, 700)
    proc.meter.ledger.record(entry(project, lease_id=fast.lease_id, prompt_tokens=300, completion_tokens=400))
    quota.settle(unlimited, 5)
    proc.meter.ledger.record(entry(project, prompt_tokens=5, completion_tokens=0))
    await proc.finish(first, 50)
    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.records) == (755, 0, 3)


async def test_admission_refused_by_the_rate_limit_holds_nothing(db):
    """The allowance is reserved first, then the key's window; a request the window refuses gives its
    reservation back and writes no record."""
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    key = principal(project, key_id="k-rl", rpm_limit=1)
    avoid_window_edge()
    first = await proc.meter.admit(key, tokens=100)
    with pytest.raises(RateLimited) as refused:
        await proc.meter.admit(key, tokens=100)
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    lease = proc.meter.quota._leases[project]
    assert (lease.reserved, lease.available) == (100, 900)  # the refused one's 100 are back in the slice
    await proc.meter.finish(first, outcome(30))
    await proc.meter.close()
    books = db.books(project)
    books.check()
    assert (books.spent, books.records, books.leased, books.lease_rows) == (30, 1, 0, 0)


async def test_finish_without_an_outcome_charges_and_records_nothing(db):
    """A request refused after admission (its large prompt counted past the context) never reached a
    model: finish(ticket) gives back its reservation and writes no usage record. Twice is a bug."""
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    ticket = await proc.reserve(project, 400)
    await proc.meter.finish(ticket)
    with pytest.raises(RuntimeError, match="twice"):
        await proc.meter.finish(ticket, outcome(10))
    assert proc.meter.ledger.pending == 0
    await proc.meter.close()
    books = db.books(project)
    assert (books.spent, books.records, books.leased, books.lease_rows) == (0, 0, 0, 0)


async def test_close_flushes_every_record_and_gives_back_every_lease(db):
    """What a SIGTERM'd server does on its way out (Runtime.stop): nothing queued is lost, nothing
    stays leased, and this process's lease rows are gone."""
    projects = [db.project(10_000), db.project(None)]
    proc = db.proc(lease_tokens=1000)
    for project in projects:
        for used in (10, 20, 30):
            await proc.finish(await proc.reserve(project, 100), used)
    assert proc.meter.ledger.pending == 6
    await proc.meter.close()
    assert proc.meter.ledger.pending == 0
    for project in projects:
        books = db.books(project)
        books.check()
        assert (books.spent, books.records, books.record_tokens, books.leased, books.lease_rows) == (60, 3, 60, 0, 0)


async def test_an_unmetered_meter_reserves_and_records_nothing(db):
    """bench/gateway.py's baseline (metered=False): admission needs no allowance, nothing is written."""
    project = db.project(10)
    proc = db.proc()
    unmetered = Meter(proc.factory, MeteringSettings(), holder="bench", metered=False)
    ticket = await unmetered.admit(principal(project), tokens=10**6)
    assert ticket.reservation is None
    await unmetered.finish(ticket, outcome(500))
    await unmetered.tick()
    await unmetered.close()
    books = db.books(project)
    assert (books.spent, books.records, books.leased) == (0, 0, 0)
