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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain

import psycopg
from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.util import await_only as await_

from jaif.access.service import touch_keys
from jaif.db.engine import make_async_engine
from jaif.metering.models import UsageRecord
from jaif.metering.quota import QuotaManager

log = logging.getLogger(__name__)


# The record's columns, in the order of a queued row. The request id is the row id (unique, so no
# record is written twice, and it spares a uuid4, a syscall, per row).
ROW_COLUMNS = (
    "id", "created_at", "project_id", "api_key_id", "endpoint", "model", "replica", "stream",
    "prompt_tokens", "completion_tokens", "total_tokens", "usage_source", "latency_ms", "ttft_ms",
    "status", "status_code",
)  # fmt: skip
_TABLE = UsageRecord.__table__
if {c.name for c in _TABLE.columns} != set(ROW_COLUMNS):
    raise RuntimeError("usage_records changed: update ledger.ROW_COLUMNS and UsageWriter.record")
ROWS_PER_STATEMENT = 500  # x 16 columns: within SQLite's 32,766 parameters per statement
# A unique request id met again: SQLAlchemy's error, or the driver's own from COPY.
_INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


@dataclass(slots=True)
class _Batch:
    """Up to max_rows queued records, with their spend and key use summed as they come (a few dict
    operations a record), so that writing a batch is the rows and a handful of statements."""

    rows: list[tuple] = field(default_factory=list)  # ROW_COLUMNS, bound as the driver takes them
    leases: list[str | None] = field(default_factory=list)  # per row: the lease its tokens came from
    spent: dict[tuple[str, str | None], int] = field(default_factory=dict)  # (project, lease) -> tokens
    last_used: dict[str, float] = field(default_factory=dict)  # key id -> its newest record (epoch s)
    sealed: bool = False  # taken by a flush: records arriving meanwhile start a new batch


class UsageWriter:
    def __init__(self, session_factory: sessionmaker[Session], quota: QuotaManager, *, max_rows: int) -> None:
        self._factory = session_factory
        self._quota = quota
        self._max_rows = max_rows
        self._batches: list[_Batch] = []
        self._lock = asyncio.Lock()
        self._stamp = _Stamps(session_factory.kw["bind"].dialect)
        self._engine: AsyncEngine | None = None  # PostgreSQL: the writer's own, made on first use
        self.written = 0

    def record(
        self,
        *,
        request_id: str,
        project_id: str,
        api_key_id: str | None,
        endpoint: str,
        model: str,
        replica: str | None,
        stream: bool,
        prompt_tokens: int,
        completion_tokens: int,
        usage_source: str,
        latency_ms: float,
        ttft_ms: float | None,
        status: str,
        status_code: int,
        lease_id: str | None,
        created_at: float | None = None,
    ) -> None:
        """Queue one request's record. ``lease_id``: the quota lease its reservation was drawn from
        (charged even if that lease was lost and replaced meanwhile), None where the project has no
        quota. ``created_at``: seconds since the epoch, default now."""
        when = time.time() if created_at is None else created_at
        total = prompt_tokens + completion_tokens
        batches = self._batches
        if not batches or batches[-1].sealed or len(batches[-1].rows) >= self._max_rows:
            batches.append(_Batch())
        batch = batches[-1]
        batch.rows.append(
            (request_id, self._stamp(when), project_id, api_key_id, endpoint, model, replica, stream,
             prompt_tokens, completion_tokens, total, usage_source, latency_ms, ttft_ms, status, status_code)
        )  # fmt: skip
        batch.leases.append(lease_id)
        key = (project_id, lease_id)
        batch.spent[key] = batch.spent.get(key, 0) + total
        if api_key_id and when > batch.last_used.get(api_key_id, 0.0):
            batch.last_used[api_key_id] = when

    @property
    def pending(self) -> int:
        return sum(len(batch.rows) for batch in self._batches)

    async def flush(self, *, heartbeat: bool = False) -> int:
        async with self._lock:
            # What is queued now, and no more: records keep coming while a batch is written, and
            # writing them at once would turn one flush per interval into a stream of tiny ones.
            taken = len(self._batches)
            for batch in self._batches:
                batch.sealed = True
            written = 0
            while taken or heartbeat:
                batch = self._batches.pop(0) if taken else _Batch()
                taken = max(0, taken - 1)
                beats = self._quota.held() if heartbeat else None
                write = asyncio.ensure_future(self._write(batch, beats))
                try:
                    n, lost = await asyncio.shield(write)
                except asyncio.CancelledError:
                    # Cancelled (Runtime.stop) while the write goes on: wait for it, holding the lock, so
                    # that the batch is written or back in pending before the final flush. Else a SQLite
                    # batch would be lost with its thread when the process exits right after (uvicorn
                    # re-raises SIGTERM once shut down, which kills running threads).
                    await asyncio.wait([write])
                    if write.exception() is not None:
                        self._requeue(batch)
                    raise
                except Exception:
                    # Keep the batch: it is retried on the next flush; the log tells the operator.
                    log.exception("writing %d usage records failed; will retry", len(batch.rows))
                    self._requeue(batch)
                    raise
                self._quota.forget(lost)
                heartbeat = False
                written += n
            self.written += written
            return written

    async def aclose(self) -> None:
        """Close the writer's own connections (after the last flush)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    def _requeue(self, batch: _Batch) -> None:
        if batch.rows:
            self._batches.insert(0, batch)

    async def _write(self, batch: _Batch, beats: list[str] | None) -> tuple[int, set[str]]:
        """Write a batch and its spend in one transaction; returns how many records were new and the
        ids of leases found lost.

        First as plain rows handed to the driver (COPY, or many rows per INSERT): SQLAlchemy's per-row
        work was most of what metering cost a request. A request id in the table already (a batch
        whose earlier commit went through although its answer was lost) fails that insert as a whole;
        the batch is then written again row by row, skipping those records and charging nothing."""
        try:
            return await self._write_in(batch, beats, fast=True)
        except _INTEGRITY_ERRORS:
            log.info("a batch of %d usage records meets records written before; skipping those", len(batch.rows))
            return await self._write_in(batch, beats, fast=False)

    async def _write_in(self, batch: _Batch, beats: list[str] | None, *, fast: bool) -> tuple[int, set[str]]:
        """PostgreSQL on the event loop through asyncio (psycopg's async connection; SQLAlchemy runs the
        writing code in a greenlet), so waiting on the server or on a row lock never holds up requests
        and no thread contends with the loop for the GIL. SQLite, which has no asyncio driver, in a
        thread: its work is mostly in C with the GIL released, and a batch's Python work is a few
        statements (the rows are ready-made), so the two threads trade the GIL a few times a batch."""
        bind = self._factory.kw["bind"]
        if bind.dialect.name != "postgresql":
            return await asyncio.to_thread(self._write_blocking, bind, batch, beats, fast)
        if self._engine is None:
            self._engine = make_async_engine(bind.url.render_as_string(hide_password=False))
        async with self._engine.begin() as connection:
            return await connection.run_sync(self._write_on, batch, beats, fast)

    def _write_blocking(self, bind: Engine, batch: _Batch, beats: list[str] | None, fast: bool) -> tuple[int, set[str]]:
        with bind.begin() as connection:
            return self._write_on(connection, batch, beats, fast)

    def _write_on(
        self, connection: Connection, batch: _Batch, beats: list[str] | None, fast: bool
    ) -> tuple[int, set[str]]:
        lost: set[str] = set()
        written = 0
        with Session(bind=connection) as session:  # joins the connection's transaction
            if batch.rows:
                if fast:
                    _insert_rows(connection, batch.rows)
                    written, spent = len(batch.rows), batch.spent
                else:
                    new = _insert_new_rows(connection, batch.rows)
                    written, spent = len(new), _spent_of(batch, new)
                if spent:
                    lost |= self._quota.spend_in(session, spent)
                touch_keys(
                    session=session,
                    last_used={key: datetime.fromtimestamp(t, UTC) for key, t in batch.last_used.items()},
                )
            if beats is not None:
                lost |= self._quota.heartbeat_in(session, beats)
            session.flush()
        return written, lost


def _spent_of(batch: _Batch, new: set[str]) -> dict[tuple[str, str | None], int]:
    """Per (project, lease), the tokens of the batch's records in ``new`` (the others were charged before)."""
    spent: dict[tuple[str, str | None], int] = {}
    for row, lease_id in zip(batch.rows, batch.leases, strict=True):
        if row[0] in new:
            key = (row[2], lease_id)
            spent[key] = spent.get(key, 0) + row[10]
    return spent


class _Stamps:
    """created_at as the driver binds it: SQLite's text form of UTCDateTime (``YYYY-MM-DD
    HH:MM:SS.ffffff``), the same with a zone for PostgreSQL's COPY, a datetime for any other driver.
    The date and time part is formatted once a second: a datetime and its isoformat per record cost
    several times the rest of recording it."""

    def __init__(self, dialect: Dialect) -> None:
        self._suffix = {"sqlite": "", "postgresql": "+00"}.get(dialect.name) if _fast_path(dialect) else None
        self._second = -1
        self._prefix = ""

    def __call__(self, when: float) -> str | datetime:
        if self._suffix is None:
            return datetime.fromtimestamp(when, UTC)
        second = int(when)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
            self._second = second
        micro = min(int((when - second) * 1_000_000 + 0.5), 999_999)  # rounded, as datetime would
        return f"{self._prefix}.{micro:06d}{self._suffix}"


def _fast_path(dialect: Dialect) -> bool:
    """Whether _insert_rows hands this driver rows itself (else SQLAlchemy's executemany does)."""
    if dialect.name == "postgresql":
        return dialect.driver == "psycopg"
    return dialect.name == "sqlite" and dialect.paramstyle == "qmark"


def _insert_rows(connection: Connection, rows: list[tuple]) -> None:
    """INSERT every row without SQLAlchemy's per-row work: COPY on PostgreSQL (psycopg), many rows
    per INSERT on SQLite, else SQLAlchemy's executemany (rows hold datetimes for it, see _Stamps)."""
    dialect = connection.dialect
    columns = ", ".join(ROW_COLUMNS)
    if not _fast_path(dialect):
        connection.execute(_TABLE.insert(), [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows])
    elif dialect.name == "postgresql":
        sql = f"COPY {_TABLE.name} ({columns}) FROM STDIN"
        driver = connection.connection.driver_connection
        if isinstance(driver, psycopg.AsyncConnection):
            await_(_copy_async(driver, sql, rows))  # in UsageWriter's greenlet: awaits on the event loop
        else:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        # Many rows per statement: executemany steps the statement once per row, and the driver lets
        # go of the GIL around every step, so the event loop's thread and this one would trade it back
        # and forth thousands of times per batch (a futex call and a context switch each time).
        one = "(" + ", ".join(["?"] * len(ROW_COLUMNS)) + ")"
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            sql = f"INSERT INTO {_TABLE.name} ({columns}) VALUES {', '.join([one] * len(chunk))}"
            connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))


async def _copy_async(driver: psycopg.AsyncConnection, sql: str, rows: list[tuple]) -> None:
    async with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            await copy.write_row(row)  # buffers; awaits the server only when the buffer is full


def _insert_new_rows(connection: Connection, rows: list[tuple]) -> set[str]:
    """Insert the rows whose request id (the row id) is not in the table yet; returns their ids. Row by
    row: this path only runs for a batch that met records written before."""
    if not _fast_path(connection.dialect):
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(_TABLE).on_conflict_do_nothing(index_elements=[_TABLE.c.id]).returning(_TABLE.c.id)
        return set(connection.execute(stmt, [dict(zip(ROW_COLUMNS, row, strict=True)) for row in rows]).scalars())
    marker = "?" if connection.dialect.name == "sqlite" else "%s"
    sql = (
        f"INSERT INTO {_TABLE.name} ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join([marker] * len(ROW_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )
    return {row[0] for row in rows if connection.exec_driver_sql(sql, row).rowcount == 1}
