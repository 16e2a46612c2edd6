"""The usage ledger writer: one record per request, written in batches off the request path.

Records are queued in memory and flushed every ``flush_interval_s`` (and on shutdown) in one
transaction that also turns their tokens into project spend (QuotaManager.spend_in), so the usage
table and the quota books can never disagree. A failed flush keeps the batch and tries again; records
whose request id is in the table already (a commit whose answer was lost, then retried) are skipped
and charged nothing, so a retry can neither charge twice nor wedge the writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from itertools import chain
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Dialect, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.util import await_only as await_

from jaif.access.service import touch_keys
from jaif.db.engine import make_async_engine
from jaif.dependencies import outage_of
from jaif.metering.models import UsageRecord
from jaif.metering.quota import QuotaManager
from jaif.metering.rows import (
    COPY_COLUMNS,
    ROW_COLUMNS,
    BinaryCopy,
    LedgerEntry,
    Spent,
    orm_rows,
    sqlite_rows,
    tally,
)

log = logging.getLogger(__name__)

_TABLE = cast(Table, UsageRecord.__table__)
ROWS_PER_STATEMENT = 64  # x 17 columns: within SQLite's 32,766 parameters per statement
_SQLITE_ROW = f"INSERT INTO {_TABLE.name} ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join(['?'] * len(ROW_COLUMNS))})"
_SQLITE_CHUNK = _SQLITE_ROW + f", ({', '.join(['?'] * len(ROW_COLUMNS))})" * (ROWS_PER_STATEMENT - 1)
COPY_CHUNK = 1000  # records turned into COPY data between two turns of the event loop
# A unique request id met again: SQLAlchemy's error, or the driver's own from COPY.
_INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


class UsageWriter:
    def __init__(self, session_factory: sessionmaker[Session], quota: QuotaManager, *, max_rows: int) -> None:
        self._factory = session_factory
        self._quota = quota
        self._max_rows = max_rows
        self._queue: list[LedgerEntry] = []  # oldest first
        self._lock = asyncio.Lock()
        self._driver = _driver_of(session_factory.kw["bind"].dialect)
        self._copy_data = BinaryCopy()
        self._engine: AsyncEngine | None = None  # PostgreSQL: the writer's own, made on first use

    def record(self, entry: LedgerEntry) -> None:
        """Queue one request's record (see LedgerEntry). An append, nothing more: this runs on every
        request; the work of turning records into rows is done at flush time (metering/rows.py)."""
        self._queue.append(entry)

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def flush(self, *, heartbeat: bool = False) -> int:
        async with self._lock:
            # What is queued now, and no more: records keep coming while a batch is written, and
            # writing them at once would turn one flush per interval into a stream of tiny ones.
            taken, self._queue = self._queue, []
            done = written = 0  # records of taken dealt with; of those, how many were new
            try:
                while done < len(taken) or heartbeat:
                    batch = taken[done : done + self._max_rows]
                    beats = self._quota.held() if heartbeat else None
                    write = asyncio.ensure_future(self._write(batch, beats))
                    try:
                        n, lost = await asyncio.shield(write)
                    except asyncio.CancelledError:
                        # Cancelled (Runtime.stop) while the write goes on: wait for it, holding the lock,
                        # so that the batch is written or back in the queue before the final flush. Else a
                        # SQLite batch would be lost with its thread when the process exits right after
                        # (uvicorn re-raises SIGTERM once shut down, which kills running threads).
                        await asyncio.wait([write])
                        if not write.cancelled() and write.exception() is None:
                            n, lost = write.result()
                            self._quota.forget(lost)
                            done, written = done + len(batch), written + n
                        raise
                    except Exception as exc:
                        # Keep the batch: it is retried on the next flush; the log tells the operator
                        # (an unreachable database once, through the runtime's DependencyHealth).
                        if outage_of(exc) is None:
                            log.exception("writing %d usage records failed; will retry", len(batch))
                        raise
                    self._quota.forget(lost)
                    heartbeat = False
                    done, written = done + len(batch), written + n
            finally:
                if done < len(taken):  # failed or cancelled: back to the front of the queue, in order
                    self._queue[:0] = taken[done:]
            return written

    async def aclose(self) -> None:
        """Close the writer's own connections (after the last flush)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    async def _write(self, batch: list[LedgerEntry], beats: list[str] | None) -> tuple[int, set[str]]:
        """Write a batch and its spend in one transaction; returns how many records were new and the
        ids of leases found lost.

        First as plain rows handed to the driver (COPY, or many rows per INSERT): SQLAlchemy's per-row
        work was most of what metering cost a request. A request id in the table already (a batch
        whose earlier commit went through although its answer was lost) fails that insert as a whole;
        the batch is then written again skipping those records, which are charged nothing."""
        try:
            return await self._write_in(batch, beats, fast=True)
        except _INTEGRITY_ERRORS:
            log.info("a batch of %d usage records meets records written before; skipping those", len(batch))
            return await self._write_in(batch, beats, fast=False)

    async def _write_in(self, batch: list[LedgerEntry], beats: list[str] | None, *, fast: bool) -> tuple[int, set[str]]:
        """PostgreSQL on the event loop through asyncio (psycopg's async connection; SQLAlchemy runs the
        writing code in a greenlet), so waiting on the server or on a row lock never holds up requests
        and no thread contends with the loop for the GIL. SQLite, which has no asyncio driver, in a
        thread: its work is mostly in C with the GIL released."""
        bind = self._factory.kw["bind"]
        if self._driver != "copy":
            return await asyncio.to_thread(self._write_blocking, bind, batch, beats, fast)
        if self._engine is None:
            self._engine = make_async_engine(bind.url.render_as_string(hide_password=False))
        async with self._engine.begin() as connection:
            return await connection.run_sync(self._write_on, batch, beats, fast)

    def _write_blocking(
        self, bind: Engine, batch: list[LedgerEntry], beats: list[str] | None, fast: bool
    ) -> tuple[int, set[str]]:
        with bind.begin() as connection:
            return self._write_on(connection, batch, beats, fast)

    def _write_on(
        self, connection: Connection, batch: list[LedgerEntry], beats: list[str] | None, fast: bool
    ) -> tuple[int, set[str]]:
        lost: set[str] = set()
        written = 0
        with Session(bind=connection) as session:  # joins the connection's transaction
            if batch:
                if fast:
                    spent, last_used = self._insert(connection, batch)
                    written = len(batch)
                else:
                    new = self._insert_new(connection, batch)
                    fresh = [record for record in batch if record.id in new]  # the others were charged before
                    written, (spent, last_used) = len(fresh), tally(fresh)
                if spent:
                    lost |= self._quota.spend_in(session, spent)
                touch_keys(
                    session=session, last_used={key: datetime.fromtimestamp(t, UTC) for key, t in last_used.items()}
                )
            if beats is not None:
                lost |= self._quota.heartbeat_in(session, beats)
            session.flush()
        return written, lost

    def _insert(self, connection: Connection, batch: list[LedgerEntry]) -> tuple[Spent, dict[str, float]]:
        """INSERT every record without SQLAlchemy's per-row work: COPY on PostgreSQL (psycopg), many
        rows per INSERT on SQLite, else SQLAlchemy's executemany. Returns the batch's tally()."""
        spent: Spent = {}
        last_used: dict[str, float] = {}
        if self._driver == "copy":
            sql = f"COPY {_TABLE.name} ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            driver = cast(Any, connection.connection.driver_connection)
            await_(_copy_async(driver, sql, batch, self._copy_data, spent, last_used))
            return spent, last_used
        if self._driver == "sqlite":
            # Many rows per statement: executemany steps the statement once per row, and the driver lets
            # go of the GIL around every step, so the event loop's thread and this one would trade it back
            # and forth thousands of times per batch (a futex call and a context switch each time).
            # Two statements of fixed shape only: full chunks of ROWS_PER_STATEMENT rows, and the rest
            # (fewer) through executemany of the one-row INSERT. The driver keeps each distinct statement
            # text compiled on its connection (up to 128 per connection): one INSERT per batch size grew
            # the server by tens of MB per pooled connection (issue 11).
            rows = sqlite_rows(batch, spent, last_used)
            full = len(rows) - len(rows) % ROWS_PER_STATEMENT
            for start in range(0, full, ROWS_PER_STATEMENT):
                chunk = rows[start : start + ROWS_PER_STATEMENT]
                connection.exec_driver_sql(_SQLITE_CHUNK, tuple(chain.from_iterable(chunk)))
            if full < len(rows):
                connection.exec_driver_sql(_SQLITE_ROW, rows[full:])
            return spent, last_used
        connection.execute(_TABLE.insert(), orm_rows(batch))
        return tally(batch)

    def _insert_new(self, connection: Connection, batch: list[LedgerEntry]) -> set[str]:
        """Insert the records whose request id (the row id) is not in the table yet; returns their ids.
        This path only runs for a batch that met records written before."""
        if self._driver == "copy":
            return await_(_stage_async(cast(Any, connection.connection.driver_connection), batch, self._copy_data))
        if self._driver == "sqlite":
            sql = f"{_SQLITE_ROW} ON CONFLICT (id) DO NOTHING"
            rows = sqlite_rows(batch, {}, {})  # the tally of what is new is the caller's
            return {row[0] for row in rows if connection.exec_driver_sql(sql, row).rowcount == 1}
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(_TABLE).on_conflict_do_nothing(index_elements=[_TABLE.c.id]).returning(_TABLE.c.id)
        return set(connection.execute(stmt, orm_rows(batch)).scalars())


def _driver_of(dialect: Dialect) -> str:
    """How the writer hands this database rows: "copy" (PostgreSQL with psycopg: COPY on the event
    loop), "sqlite" (many rows per INSERT, in a thread) or "orm" (SQLAlchemy's executemany, in a thread)."""
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "copy"
    if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        return "sqlite"
    return "orm"


async def _copy_async(
    driver: psycopg.AsyncConnection,
    sql: str,
    batch: list[LedgerEntry],
    data: BinaryCopy,
    spent: Spent,
    last_used: dict[str, float],
) -> None:
    async with driver.cursor() as cursor, cursor.copy(sql) as copy:
        await copy.write(BinaryCopy.HEADER)
        for start in range(0, len(batch), COPY_CHUNK):
            await copy.write(data(batch[start : start + COPY_CHUNK], spent, last_used))
            await asyncio.sleep(0)  # let requests run between chunks: a large batch must not stall them
        await copy.write(BinaryCopy.TRAILER)


async def _stage_async(driver: psycopg.AsyncConnection, batch: list[LedgerEntry], data: BinaryCopy) -> set[str]:
    """COPY the batch into a temporary table, then move over the records not in usage_records yet."""
    columns = ", ".join(COPY_COLUMNS)
    async with driver.cursor() as cursor:
        await cursor.execute(f"CREATE TEMPORARY TABLE usage_stage (LIKE {_TABLE.name}) ON COMMIT DROP")
        # The tally of what turns out new is the caller's: these dicts are thrown away.
        await _copy_async(driver, f"COPY usage_stage ({columns}) FROM STDIN (FORMAT BINARY)", batch, data, {}, {})
        await cursor.execute(
            f"INSERT INTO {_TABLE.name} ({columns}) SELECT {columns} FROM usage_stage "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        return {row[0] for row in await cursor.fetchall()}
