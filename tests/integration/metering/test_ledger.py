"""The usage ledger (UsageWriter, owned by the Meter) against a real database: named records written
in bulk (COPY on PostgreSQL, multi-row INSERTs on SQLite) exactly as the ORM would store them, failed
and repeated batches, keys' last use."""

from __future__ import annotations

import ctypes
from datetime import timedelta

import pytest
from sqlalchemy import event

from jaif.access import service as access
from jaif.access.models import ApiKey, Project
from jaif.db.base import utcnow
from jaif.db.engine import transaction
from jaif.metering.models import UsageRecord
from jaif.metering.rows import LedgerEntry
from tests.integration.metering.conftest import entry


async def test_a_failed_flush_keeps_its_batch_and_a_later_one_writes_it_once(db):
    project = db.project(10_000)
    proc = db.proc()
    ledger = proc.meter.ledger
    for used in (10, 20, 30):
        await proc.finish(await proc.reserve(project, 100), used)
    before = db.books(project)
    # Break the database under the writer: the table it writes is not there for a while.
    db.execute("ALTER TABLE usage_records RENAME TO usage_records_away")
    try:
        with pytest.raises(Exception, match="usage_records"):
            await proc.meter.tick()
        assert ledger.pending == 3
        await proc.finish(await proc.reserve(project, 100), 40)
    finally:
        db.execute("ALTER TABLE usage_records_away RENAME TO usage_records")
    assert db.books(project).spent == 0  # the failed transaction left no trace
    assert await ledger.flush() == 4
    books = db.books(project)
    books.check()
    assert (books.spent, books.records, books.record_tokens) == (100, 4, 100)
    assert books.leased == before.leased - 100
    assert await ledger.flush() == 0
    assert db.books(project).spent == 100


async def test_a_batch_written_before_is_not_charged_again(db):
    """A commit whose answer was lost (the connection dropped during COMMIT) looks like a failure:
    the writer keeps the batch and writes it again. The unique request id must make that harmless,
    not wedge the writer: records already there are skipped and charged nothing."""
    project = db.project(10_000)
    proc = db.proc()
    ledger = proc.meter.ledger
    ticket = await proc.reserve(project, 100)
    first = await proc.finish(ticket, 10)
    await ledger.flush()
    # The same record again, as a retried batch would carry it.
    ledger.record(entry(project, request_id=first.id, lease_id=ticket.reservation.lease_id))
    await proc.finish(await proc.reserve(project, 100), 20)
    assert await ledger.flush() == 1  # the second only
    assert ledger.pending == 0
    books = db.books(project)
    books.check()
    assert (books.spent, books.records, books.record_tokens) == (30, 2, 30)
    await proc.meter.close()
    assert db.books(project).leased == 0


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
    proc.meter.ledger.record(LedgerEntry(id="writer", created_at=when.timestamp(), lease_id=None, **fields))
    assert await proc.meter.ledger.flush() == 1
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
        proc.meter.ledger.record(
            entry(project, endpoint="chat.completions", prompt_tokens=2**40, completion_tokens=1, latency_ms=1e-6,
                  **record)
        )  # fmt: skip
    assert await proc.meter.ledger.flush() == 2
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
        proc.meter.ledger.record(entry(project, api_key_id=key, created_at=base + offset))
    assert await proc.meter.ledger.flush() == 3
    with db.sessions() as session:
        used = {key: session.get(ApiKey, key).last_used_at.timestamp() for key in keys}
    assert used == {keys[0]: base + 5.25, keys[1]: base + 3.0}


def _sqlite_statement_memory() -> int:
    """Bytes SQLite's allocator holds in this process less its page caches (which grow with the file,
    up to cache_size per connection): mostly compiled statements, out of tracemalloc's sight. Read from
    the library the sqlite3 module is linked with (sqlite3_memory_used, sqlite3_status64)."""
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    current, highest = ctypes.c_int64(), ctypes.c_int64()
    sqlite_status_pagecache_overflow = 2  # page cache memory taken from the general allocator
    lib.sqlite3_status64(sqlite_status_pagecache_overflow, ctypes.byref(current), ctypes.byref(highest), 0)
    return lib.sqlite3_memory_used() - current.value


async def test_usage_batches_of_every_size_leave_sqlites_memory_bounded(db):
    """Issue 11: SQLite keeps each distinct statement text compiled on its connection (up to 128). One
    INSERT per batch size, as the writer had, grew a server by tens of MB under steady load. Batches
    of 150 different sizes must leave the memory of SQLite's statements where a few batches left it."""
    if not db.url.startswith("sqlite"):
        pytest.skip("SQLite's statement cache; PostgreSQL gets COPY")
    project = db.project(None)
    proc = db.proc()
    ledger = proc.meter.ledger
    for size in (1, 64, 65):  # every shape of statement the writer needs, compiled once
        for _ in range(size):
            ledger.record(entry(project))
        await ledger.flush()
    before = _sqlite_statement_memory()
    written = 0
    for size in range(1, 300, 2):
        for _ in range(size):
            ledger.record(entry(project))
        written += await ledger.flush()
    grown = _sqlite_statement_memory() - before
    assert written == sum(range(1, 300, 2))
    assert db.books(project).records == written + 1 + 64 + 65
    assert grown < 500_000, f"SQLite's statements grew by {grown / 1e6:.1f} MB"


async def test_usage_flushes_run_statements_of_a_few_shapes_whatever_their_size(db):
    """Each distinct statement text is one more compiled statement in SQLite's cache (and one more
    prepared statement on PostgreSQL): batches of 1 to 200 records of 1 to 20 projects must not each
    bring their own."""
    if not db.url.startswith("sqlite"):
        pytest.skip("on PostgreSQL the writer works on an asyncio engine of its own, with COPY")
    projects = [db.project(None) for _ in range(20)]
    proc = db.proc()
    ledger = proc.meter.ledger
    statements: set[str] = set()
    event.listen(proc.engine, "before_cursor_execute", lambda *args: statements.add(args[2]))
    written = 0
    for size in range(1, 200, 3):
        for i in range(size):
            ledger.record(entry(projects[i % (size % 20 + 1)]))
        written += await ledger.flush()
    assert written == sum(range(1, 200, 3))
    # BEGIN, the two INSERTs, the spend UPDATE, and the project locks in six sizes (1, 2, 4 ... 32 ids).
    assert len(statements) <= 10, f"{len(statements)} statements: {sorted(statements)}"
