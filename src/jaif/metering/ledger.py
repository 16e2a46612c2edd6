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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jaif.access.service import touch_keys
from jaif.db.base import UTCDateTime, sqlite_time
from jaif.db.engine import transaction
from jaif.metering.models import UsageRecord
from jaif.metering.quota import QuotaManager

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    created_at: datetime
    project_id: str
    api_key_id: str | None
    endpoint: str
    model: str
    replica: str | None
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    latency_ms: float
    ttft_ms: float | None
    status: str
    status_code: int
    leased: bool
    lease_id: str | None = None  # the quota lease the request's reservation was drawn from

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageWriter:
    def __init__(self, session_factory: sessionmaker[Session], quota: QuotaManager, *, max_rows: int) -> None:
        self._factory = session_factory
        self._quota = quota
        self._max_rows = max_rows
        self._pending: list[UsageEvent] = []
        self._lock = asyncio.Lock()
        self.written = 0

    def record(self, event: UsageEvent) -> None:
        if event.leased and event.lease_id is None:
            event.lease_id = self._quota.current_lease_id(event.project_id)
        self._pending.append(event)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, *, heartbeat: bool = False) -> int:
        async with self._lock:
            written = 0
            while self._pending or heartbeat:
                batch, self._pending = self._pending[: self._max_rows], self._pending[self._max_rows :]
                beats = self._quota.held() if heartbeat else None
                write = asyncio.ensure_future(asyncio.to_thread(self._write, batch, beats))
                try:
                    n, lost = await asyncio.shield(write)
                except asyncio.CancelledError:
                    # Cancelled (Runtime.stop) while the thread writes on: wait for it, holding the lock,
                    # so that the batch is written or back in pending before the final flush. Else it
                    # would be lost with the thread when the process exits right after (uvicorn
                    # re-raises SIGTERM once shut down, which kills running threads).
                    await asyncio.wait([write])
                    if write.exception() is not None:
                        self._pending[:0] = batch
                    raise
                except Exception:
                    # Keep the batch: it is retried on the next flush; the log tells the operator.
                    log.exception("writing %d usage records failed; will retry", len(batch))
                    self._pending[:0] = batch
                    raise
                self._quota.forget(lost)
                heartbeat = False
                written += n
            self.written += written
            return written

    def _write(self, batch: list[UsageEvent], beats: list[str] | None) -> tuple[int, set[str]]:
        """Write a batch and its spend in one transaction; returns how many records were new and the
        ids of leases found lost.

        First as plain rows handed to the driver's executemany: SQLAlchemy's per-row work, done on
        the event loop's GIL, was most of what metering cost a request. A request id in the table
        already (a batch whose earlier commit went through although its answer was lost) fails that
        insert as a whole; the batch is then written again row by row, skipping those records."""
        try:
            return self._write_in(batch, beats, fast=True)
        except (IntegrityError, self._driver_integrity_error()):
            log.info("a batch of %d usage records meets records written before; skipping those", len(batch))
            return self._write_in(batch, beats, fast=False)

    def _driver_integrity_error(self) -> type[Exception]:
        # COPY runs on the driver's own connection: its errors are the driver's, not SQLAlchemy's.
        dbapi = self._factory.kw["bind"].dialect.loaded_dbapi
        return getattr(dbapi, "IntegrityError", IntegrityError)

    def _write_in(self, batch: list[UsageEvent], beats: list[str] | None, *, fast: bool) -> tuple[int, set[str]]:
        lost: set[str] = set()
        written: set[str] = set()
        with transaction(self._factory) as session:
            if batch:
                connection = session.connection()
                if fast:
                    _insert_rows(connection, batch)
                    written = {event.request_id for event in batch}
                else:
                    written = _insert_new_rows(connection, batch)
                # Per (project, lease): a batch may hold use of several leases of one project (one
                # lost and its successor) and use drawn from none (a project without quota).
                spent: dict[tuple[str, str | None], int] = {}
                last_used: dict[str, datetime] = {}
                for event in batch:
                    if not fast and event.request_id not in written:
                        continue  # written and charged by an earlier attempt
                    key = (event.project_id, event.lease_id if event.leased else None)
                    spent[key] = spent.get(key, 0) + event.prompt_tokens + event.completion_tokens
                    if event.api_key_id:
                        when = last_used.get(event.api_key_id)
                        if when is None or event.created_at > when:
                            last_used[event.api_key_id] = event.created_at
                if spent:
                    lost |= self._quota.spend_in(session, spent)
                touch_keys(session=session, last_used=last_used)
            if beats is not None:
                lost |= self._quota.heartbeat_in(session, beats)
        return len(written), lost


# The record's columns in table order, and where each comes from: the request id is the row id (unique,
# so no record is written twice, and it spares a uuid4, a syscall, per row).
ROWS_PER_STATEMENT = 500  # x 16 columns: within SQLite's 32,766 parameters per statement
_SOURCES = {"id": "request_id", "total_tokens": "total_tokens"}
_TABLE = UsageRecord.__table__
_ROW_COLUMNS = tuple(c.name for c in _TABLE.columns)
_ROW_OF = attrgetter(*(_SOURCES.get(name, name) for name in _ROW_COLUMNS))


def _processors(dialect: Dialect) -> list[tuple[int, Callable[[Any], Any]]]:
    """Per column position, the conversion SQLAlchemy's column type would apply to a value bound to it."""
    found = []
    for i, column in enumerate(_TABLE.columns):
        if dialect.name == "sqlite" and isinstance(column.type, UTCDateTime):
            found.append((i, sqlite_time))
        elif (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None:
            found.append((i, process))
    return found


def _insert_rows(connection: Connection, batch: list[UsageEvent]) -> None:
    """INSERT every record, values converted the way SQLAlchemy's column types would (UTC datetimes
    for SQLite, say) but without its per-row work: COPY on PostgreSQL (psycopg), else the driver's
    executemany."""
    dialect = connection.dialect
    width = len(_ROW_COLUMNS)
    # The values of all rows in one list, each column converted in one go (a slice of every width-th
    # value), not row by row: per row that was a list, a tuple and a loop in Python.
    values = [value for event in batch for value in _ROW_OF(event)]
    for i, process in _processors(dialect):
        values[i::width] = map(process, values[i::width])
    columns = ", ".join(_ROW_COLUMNS)
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {_TABLE.name} ({columns}) FROM STDIN") as copy:
                for row in zip(*[iter(values)] * width, strict=True):
                    copy.write_row(row)
        return
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if marker is None:  # a driver this path does not know: SQLAlchemy's own executemany
        rows = [dict(zip(_ROW_COLUMNS, values[i : i + width], strict=True)) for i in range(0, len(values), width)]
        connection.execute(_TABLE.insert(), rows)
        return
    # Many rows per statement: executemany steps the statement once per row, and the driver lets go
    # of the GIL around every step, so the event loop's thread and this one would trade it back and
    # forth thousands of times per batch (a futex call and a context switch each time).
    one = "(" + ", ".join([marker] * width) + ")"
    for start in range(0, len(batch), ROWS_PER_STATEMENT):
        n = min(ROWS_PER_STATEMENT, len(batch) - start)
        sql = f"INSERT INTO {_TABLE.name} ({columns}) VALUES {', '.join([one] * n)}"
        connection.exec_driver_sql(sql, tuple(values[start * width : (start + n) * width]))


def _insert_new_rows(connection: Connection, batch: list[UsageEvent]) -> set[str]:
    """Insert the records whose request id (the row id) is not in the table yet; returns their ids."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # Core, not the ORM's bulk path: the batch is plain rows, and the ORM's per-row bookkeeping
    # cost the event loop's thread a third of its time under load.
    stmt = dialect.insert(_TABLE).on_conflict_do_nothing(index_elements=[_TABLE.c.id]).returning(_TABLE.c.id)
    rows = [dict(zip(_ROW_COLUMNS, _ROW_OF(event), strict=True)) for event in batch]
    return set(connection.execute(stmt, rows).scalars())
