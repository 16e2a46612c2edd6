"""QuotaManager and UsageWriter against a real, migrated database (SQLite; PostgreSQL where
JAIF_TEST_DATABASE_URL is set).

Every "process" here is a QuotaManager + UsageWriter with an engine of its own, as each `jaif serve`
process has; several of them on one database stand for several gateway processes. What must hold
whatever they do: tokens_spent + tokens_leased <= token_quota, tokens_leased is the sum of the lease
rows, and once everything is flushed and given back, tokens_spent is the sum of the usage records.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from jaif.access import service as access
from jaif.access.models import ApiKey, Project
from jaif.config import Settings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.db.migrate import upgrade
from jaif.errors import QuotaExceeded
from jaif.metering import quota as quota_module
from jaif.metering.ledger import UsageWriter
from jaif.metering.models import QuotaLease, UsageRecord
from jaif.metering.quota import QuotaManager, Reservation
from jaif.runtime import Runtime


@dataclass
class Books:
    quota: int | None
    spent: int
    leased: int
    lease_rows: int
    lease_tokens: int
    records: int
    record_tokens: int

    def check(self) -> None:
        """The invariants that hold at every moment, whatever the processes are doing."""
        assert self.leased == self.lease_tokens, self
        assert self.leased >= 0 and self.spent >= 0, self
        if self.quota is not None:
            assert self.spent + self.leased <= self.quota, self


class Proc:
    """What one gateway process holds: its own engine, quota manager and usage writer."""

    def __init__(self, url: str, *, lease_tokens: int = 1000, lease_ttl_s: float = 60.0, idle_return_s: float = 60.0):
        self.engine = make_engine(url)
        self.factory = make_session_factory(self.engine)
        self.quota = QuotaManager(
            self.factory,
            holder=f"test:{uuid.uuid4().hex[:8]}",
            lease_tokens=lease_tokens,
            lease_ttl_s=lease_ttl_s,
            idle_return_s=idle_return_s,
        )
        self.usage = UsageWriter(self.factory, self.quota, max_rows=50)

    async def reserve(self, project_id: str, tokens: int) -> Reservation:
        return await self.quota.reserve(project_id=project_id, has_quota=True, tokens=tokens)

    def finish(self, reservation: Reservation, used: int) -> dict:
        """Settle as the gateway does at the end of a request, and queue its usage record."""
        self.quota.settle(reservation, used)
        event = usage_event(reservation, used)
        self.usage.record(**event)
        return event

    async def give_back(self, *, everything: bool = False) -> None:
        """What Runtime._give_back does: take idle slices off the books, return them to the database."""
        taken = self.quota.take_idle(everything=everything)
        if not taken and not everything:
            return

        def write() -> None:
            with transaction(self.factory) as session:
                self.quota.give_back_in(session, taken)

        try:
            await asyncio.to_thread(write)
        except Exception:
            self.quota.untake(taken)
            raise

    async def reclaim(self) -> int:
        def run() -> int:
            with transaction(self.factory) as session:
                return self.quota.reclaim_expired_in(session)

        return await asyncio.to_thread(run)


def usage_event(reservation: Reservation, used: int) -> dict:
    """UsageWriter.record's arguments for a request that used ``used`` tokens of ``reservation``."""
    prompt = used // 2
    return dict(
        request_id=uuid.uuid4().hex,
        project_id=reservation.project_id,
        api_key_id=None,
        endpoint="chat.completions",
        model="m",
        replica=None,
        stream=False,
        prompt_tokens=prompt,
        completion_tokens=used - prompt,
        usage_source="upstream",
        latency_ms=1.0,
        ttft_ms=None,
        status="ok",
        status_code=200,
        lease_id=reservation.lease_id if reservation.leased else None,
    )


@pytest.fixture
async def db(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    procs: list[Proc] = []

    class Db:
        url = database_url
        sessions = factory  # a sessionmaker: no method binding

        @staticmethod
        def project(quota: int | None) -> str:
            with transaction(factory) as session:
                if not access.list_organisations(session=session):
                    access.create_organisation(session=session, name="Org", sector="academia", country="DE")
                name = f"p-{uuid.uuid4().hex[:8]}"
                return access.create_project(session=session, name=name, organisation="Org", token_quota=quota).id

        @staticmethod
        def proc(**kwargs) -> Proc:
            procs.append(Proc(database_url, **kwargs))
            return procs[-1]

        @staticmethod
        def books(project_id: str) -> Books:
            with factory() as session:
                quota, spent, leased = session.execute(
                    select(Project.token_quota, Project.tokens_spent, Project.tokens_leased).where(
                        Project.id == project_id
                    )
                ).one()
                rows, lease_tokens = session.execute(
                    select(func.count(), func.coalesce(func.sum(QuotaLease.tokens), 0)).where(
                        QuotaLease.project_id == project_id
                    )
                ).one()
                records, record_tokens = session.execute(
                    select(func.count(), func.coalesce(func.sum(UsageRecord.total_tokens), 0)).where(
                        UsageRecord.project_id == project_id
                    )
                ).one()
            return Books(quota, spent, leased, rows, lease_tokens, records, record_tokens)

        @staticmethod
        def execute(sql: str) -> None:
            with transaction(factory) as session:
                session.execute(text(sql))

    yield Db
    for proc in procs:
        await proc.usage.aclose()
        proc.engine.dispose()
    engine.dispose()


async def _try_reserve(proc: Proc, project_id: str, tokens: int) -> Reservation | None:
    try:
        return await proc.reserve(project_id, tokens)
    except QuotaExceeded:
        return None


async def test_concurrent_reservations_never_exceed_the_quota(db):
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    got = await asyncio.gather(*(_try_reserve(proc, project, 100) for _ in range(300)))
    held = [r for r in got if r is not None]
    # Leases are taken a slice at a time; the whole allowance is leasable, so exactly 100 fit.
    assert len(held) == 100
    books = db.books(project)
    books.check()
    assert books.leased == 10_000 and books.spent == 0

    refused = await _try_reserve(proc, project, 1)
    assert refused is None
    for r in held:
        proc.finish(r, 0)
    await proc.usage.flush()
    await proc.give_back(everything=True)
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
    assert await _try_reserve(proc, project, 300) is None
    proc.finish(first, 150)
    third = await proc.reserve(project, 300)
    leased = db.books(project).leased
    proc.finish(second, 400)
    proc.finish(third, 7)

    books = db.books(project)
    assert books.spent == 0 and books.records == 0  # nothing is spent before the writer flushes
    assert await proc.usage.flush() == 3
    books = db.books(project)
    books.check()
    assert books.spent == 557 == books.record_tokens and books.records == 3
    assert books.leased == leased - 557
    assert await proc.usage.flush() == 0
    assert db.books(project).spent == 557  # a second flush charges nothing again

    await proc.give_back(everything=True)
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (557, 0, 0)


async def _worker(proc: Proc, project_id: str, rounds: int, used: list[int]) -> None:
    rng = random.Random()
    for _ in range(rounds):
        reservation = await _try_reserve(proc, project_id, 100)
        await asyncio.sleep(rng.random() / 500)
        if reservation is not None:
            n = rng.randint(1, 100)
            proc.finish(reservation, n)
            used.append(n)


async def _housekeeping(proc: Proc, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await proc.usage.flush()
        await proc.give_back()
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
        await p.usage.flush()
        await p.give_back(everything=True)

    books = db.books(project)
    books.check()
    assert sum(used) > quota // 2, "the test should run the allowance down"
    assert books.spent == sum(used) == books.record_tokens <= quota
    assert books.records == len(used)
    assert (books.leased, books.lease_rows) == (0, 0)


async def test_two_processes_reserving_at_once_share_the_allowance_exactly(db):
    project = db.project(10_000)
    a, b = db.proc(lease_tokens=700), db.proc(lease_tokens=700)
    got = await asyncio.gather(*(_try_reserve(p, project, 100) for _ in range(150) for p in (a, b)))
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


    async def next_grant() -> int:
        """Reserve one token more than the slice holds (a grant of one more at least), settle at 0."""
        lease = proc.quota._leases.get(project)
        before = db.books(project).leased
        proc.finish(await proc.reserve(project, (lease.available if lease else 0) + 1), 0)
        return db.books(project).leased - before

    grants = [await next_grant() for _ in range(9)]
    assert grants == [100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]  # MAX_GROWTH = 64
    assert quota_module.MAX_GROWTH == 64
    proc.quota._leases[project].granted_at -= quota_module.GROW_WITHIN_S * 10  # a long pause
    assert await next_grant() == 100
    await proc.give_back(everything=True)
    books = db.books(project)
    books.check()
    assert books.leased == 0


async def test_idle_leases_are_given_back(db):
    project = db.project(100_000)
    proc = db.proc(lease_tokens=5000, idle_return_s=0.05)
    reservation = await proc.reserve(project, 100)
    assert db.books(project).leased == 5000
    proc.finish(reservation, 40)
    await proc.give_back()
    assert db.books(project).leased == 5000  # just used: not idle yet

    await asyncio.sleep(0.1)
    await proc.give_back()
    books = db.books(project)
    books.check()
    assert (books.leased, books.lease_rows) == (40, 1)  # used but not yet flushed stays leased
    await proc.usage.flush()
    await proc.give_back()
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased) == (40, 0)

    # The slice is taken again when needed.
    again = await proc.reserve(project, 100)
    proc.finish(again, 100)
    await proc.usage.flush()
    await proc.give_back(everything=True)
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
    assert await _try_reserve(survivor, project, 1001 - leased) is None
    assert await survivor.reclaim() == 0
    await asyncio.sleep(0.6)
    # Expired: reclaimed on demand when the survivor needs the tokens ...
    reservation = await survivor.reserve(project, 1000)
    books = db.books(project)
    books.check()
    assert (books.leased, books.lease_rows) == (1000, 1)
    survivor.finish(reservation, 10)
    await survivor.usage.flush()
    await survivor.give_back(everything=True)
    books = db.books(project)
    assert (books.spent, books.leased, books.lease_rows) == (10, 0, 0)


async def test_expired_leases_are_reclaimed_by_any_process(db):
    project = db.project(1000)
    gone = db.proc(lease_tokens=300, lease_ttl_s=0.3)
    await gone.reserve(project, 100)
    other = db.project(1000)
    await gone.reserve(other, 100)
    survivor = db.proc(lease_ttl_s=0.3)
    await asyncio.sleep(0.4)
    assert await survivor.reclaim() == 500  # a quarter of each allowance
    for p in (project, other):
        books = db.books(p)
        books.check()
        assert (books.leased, books.lease_rows) == (0, 0)


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
        reservation = await runtime.quota.reserve(project_id=project, has_quota=True, tokens=100)
        runtime.quota.settle(reservation, 0)
        assert db.books(project).leased == 250  # a quarter of what is left
        other = db.proc(lease_ttl_s=0.4)
        for _ in range(4):  # four lease lifetimes: only heartbeats keep it
            await asyncio.sleep(0.3)
            assert await other.reclaim() == 0
        books = db.books(project)
        books.check()
        assert (books.leased, books.lease_rows) == (250, 1)
        assert await _try_reserve(other, project, 751) is None
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


async def test_a_failed_flush_keeps_its_batch_and_a_later_one_writes_it_once(db):
    project = db.project(10_000)
    proc = db.proc()
    for used in (10, 20, 30):
        proc.finish(await proc.reserve(project, 100), used)
    before = db.books(project)
    # Break the database under the writer: the table it writes is not there for a while.
    db.execute("ALTER TABLE usage_records RENAME TO usage_records_away")
    try:
        with pytest.raises(Exception, match="usage_records"):
            await proc.usage.flush()
        assert proc.usage.pending == 3
        proc.finish(await proc.reserve(project, 100), 40)
    finally:
        db.execute("ALTER TABLE usage_records_away RENAME TO usage_records")
    assert db.books(project).spent == 0  # the failed transaction left no trace
    assert await proc.usage.flush() == 4
    books = db.books(project)
    books.check()
    assert (books.spent, books.records, books.record_tokens) == (100, 4, 100)
    assert books.leased == before.leased - 100
    assert await proc.usage.flush() == 0
    assert db.books(project).spent == 100


async def test_a_batch_written_before_is_not_charged_again(db):
    """A commit whose answer was lost (the connection dropped during COMMIT) looks like a failure:
    the writer keeps the batch and writes it again. The unique request id must make that harmless,
    not wedge the writer: records already there are skipped and charged nothing."""
    project = db.project(10_000)
    proc = db.proc()
    first = proc.finish(await proc.reserve(project, 100), 10)
    await proc.usage.flush()
    proc.usage.record(**first)  # the same record again, as a retried batch would carry it
    proc.finish(await proc.reserve(project, 100), 20)
    assert await proc.usage.flush() == 1  # the second only
    assert proc.usage.pending == 0
    books = db.books(project)
    books.check()
    assert (books.spent, books.records, books.record_tokens) == (30, 2, 30)
    await proc.give_back(everything=True)
    assert db.books(project).leased == 0


async def test_a_holder_whose_lease_was_reclaimed_does_not_spend_it(db):
    """A live process that missed its heartbeats (database unreachable for longer than the lease
    lifetime) loses its lease to another process's reclaim. Once it reaches the database again it
    must not go on reserving from the slice it remembers: nobody counts those tokens as leased."""
    quota = 1000
    project = db.project(quota)
    late = db.proc(lease_tokens=1000, lease_ttl_s=0.3)
    late.finish(await late.reserve(project, 100), 0)  # holds a slice of 250, nothing in flight
    await asyncio.sleep(0.4)
    other = db.proc(lease_tokens=1000, lease_ttl_s=60)
    assert await other.reclaim() == 250
    taken = []
    while (r := await _try_reserve(other, project, 100)) is not None:
        taken.append(r)
    assert len(taken) == 10
    await late.usage.flush(heartbeat=True)  # the late process is back: its next heartbeat
    more = []
    while (r := await _try_reserve(late, project, 100)) is not None:
        more.append(r)
    assert more == []
    for r in taken:
        other.finish(r, 100)
    await other.usage.flush()
    await other.give_back(everything=True)
    await late.usage.flush(heartbeat=True)
    await late.give_back(everything=True)
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.lease_rows) == (1000, 0, 0)


async def test_stop_waits_for_a_flush_in_flight(db):
    """Runtime.stop cancels the background flush; one caught writing must finish (or put its batch
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
            runtime.usage.record(**usage_event(Reservation(project, 10, leased=False), 10))
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


async def test_the_usage_writer_stores_what_the_orm_would(db):
    """The writer converts values itself, column by column, not through SQLAlchemy's per-row machinery:
    what it stores must be what the ORM stores for the same record, to the byte, on every database."""
    project = db.project(None)
    proc = db.proc()
    when = utcnow().replace(microsecond=654321)  # kept to the microsecond through the epoch seconds
    fields = dict(
        project_id=project,
        api_key_id=None,
        endpoint="chat.completions",
        model="m",
        replica="http://127.0.0.1:1/v1",
        stream=True,
        prompt_tokens=3,
        completion_tokens=4,
        usage_source="upstream",
        latency_ms=12.5,
        ttft_ms=0.25,
        status="ok",
        status_code=200,
    )
    proc.usage.record(request_id="writer", lease_id=None, created_at=when.timestamp(), **fields)
    assert await proc.usage.flush() == 1
    with transaction(proc.factory) as session:
        session.add(UsageRecord(id="orm", created_at=when, total_tokens=7, **fields))
    with proc.engine.connect() as conn:
        rows = {row[0]: row[1:] for row in conn.exec_driver_sql("SELECT * FROM usage_records")}
    assert rows["writer"] == rows["orm"]
    with proc.factory() as session:
        written = session.get(UsageRecord, "writer")
        assert (written.request_id, written.created_at, written.total_tokens) == ("writer", when, 7)


async def test_the_usage_writer_keeps_awkward_values_intact(db):
    """Text that a COPY format or a hand-built statement could mangle (tabs, newlines, backslashes, what
    looks like NULL, non-ASCII), NULLs beside values, and a time at the end of a second: stored as given."""
    project = db.project(None)
    with transaction(db.sessions) as session:
        key = access.create_api_key(session=session, project_name=session.get(Project, project).name)[0].id
    proc = db.proc()
    second = utcnow().replace(microsecond=0)
    records = [
        dict(request_id="req\t1\\N", api_key_id=key, model="Jülich\\model\n\"x\"", replica="http://h:1/v1?a=\t\\N",
             stream=False, ttft_ms=None, created_at=(second + timedelta(microseconds=999_999)).timestamp(),
             status="error", status_code=502, usage_source="tokenizer"),
        dict(request_id="r\u00e9q-2\r", api_key_id=None, model="\\N", replica=None, stream=True, ttft_ms=0.0,
             created_at=second.timestamp(), status="ok", status_code=200, usage_source="upstream"),
    ]  # fmt: skip
    for record in records:
        proc.usage.record(
            project_id=project, endpoint="chat.completions", prompt_tokens=2**40, completion_tokens=1,
            latency_ms=1e-6, lease_id=None, **record,
        )  # fmt: skip
    assert await proc.usage.flush() == 2
    with proc.factory() as session:
        for record in records:
            row = session.get(UsageRecord, record["request_id"])
            assert row is not None, record["request_id"]
            stored = {name: getattr(row, name) for name in record if name not in ("request_id", "created_at")}
            assert stored == {k: v for k, v in record.items() if k not in ("request_id", "created_at")}
            assert row.created_at.timestamp() == pytest.approx(record["created_at"], abs=1e-6)
            assert (row.project_id, row.prompt_tokens, row.total_tokens, row.latency_ms) == (
                project, 2**40, 2**40 + 1, 1e-6,
            )  # fmt: skip
    assert db.books(project).spent == 2 * (2**40 + 1)


async def test_a_flush_records_each_keys_last_use(db):
    """The portal and `jaif key list` show when a key was last used: the newest of its flushed records."""
    project = db.project(None)
    with transaction(db.sessions) as session:
        name = session.get(Project, project).name
        keys = [access.create_api_key(session=session, project_name=name)[0].id for _ in range(2)]
    proc = db.proc()
    base = utcnow().replace(microsecond=0).timestamp()
    for key, offset in ((keys[0], 5.25), (keys[0], 1.5), (keys[1], 3.0)):  # not in time order
        event = usage_event(Reservation(project, 10, leased=False), 10)
        proc.usage.record(**{**event, "api_key_id": key, "created_at": base + offset})
    assert await proc.usage.flush() == 3
    with db.sessions() as session:
        used = {key: session.get(ApiKey, key).last_used_at.timestamp() for key in keys}
    assert used == {keys[0]: base + 5.25, keys[1]: base + 3.0}


async def test_reserve_now_draws_on_the_slice_in_hand_and_leaves_the_rest_to_reserve(db):
    """The gateway's fast path: no database, no waiting; None whenever only reserve() can answer."""
    project = db.project(10_000)
    proc = db.proc(lease_tokens=1000)
    assert proc.quota.reserve_now(project, True, 100) is None  # no slice yet
    first = await proc.reserve(project, 100)  # leases a slice of 1000
    fast = proc.quota.reserve_now(project, True, 800)
    assert fast is not None and fast.leased and fast.lease_id == first.lease_id
    assert proc.quota.reserve_now(project, True, 101) is None  # 100 left in the slice
    unlimited = proc.quota.reserve_now(project, False, 10**9)
    assert unlimited is not None and not unlimited.leased
    for reservation, used in ((first, 50), (fast, 700), (unlimited, 5)):
        proc.finish(reservation, used)
    await proc.usage.flush()
    await proc.give_back(everything=True)
    books = db.books(project)
    books.check()
    assert (books.spent, books.leased, books.records) == (755, 0, 3)
