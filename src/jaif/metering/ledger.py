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
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from jaif.access.service import touch_keys
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


_COLUMNS = tuple(f.name for f in fields(UsageEvent) if f.name not in ("leased", "lease_id"))


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
        ids of leases found lost."""
        # Plain dicts by hand: dataclasses.asdict deep-copies every field, a cost paid per request.
        # The request id is unique already; as the row id it spares a uuid4 (a syscall) per row.
        rows = [
            {name: getattr(event, name) for name in _COLUMNS}
            | {"id": event.request_id, "total_tokens": event.total_tokens}
            for event in batch
        ]
        lost: set[str] = set()
        written: set[str] = set()
        with transaction(self._factory) as session:
            if rows:
                dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
                table = UsageRecord.__table__
                # Core, not the ORM's bulk path: the batch is plain rows, and the ORM's per-row
                # bookkeeping cost the event loop's thread a third of its time under load.
                stmt = (
                    dialect.insert(table)
                    .on_conflict_do_nothing(index_elements=[table.c.request_id])
                    .returning(table.c.request_id)
                )
                written = set(session.connection().execute(stmt, rows).scalars())
                # Per (project, lease): a batch may hold use of several leases of one project (one
                # lost and its successor) and use drawn from none (a project without quota).
                spent: dict[tuple[str, str | None], int] = {}
                last_used: dict[str, datetime] = {}
                for event in batch:
                    if event.request_id not in written:
                        continue  # written and charged by an earlier attempt
                    key = (event.project_id, event.lease_id if event.leased else None)
                    spent[key] = spent.get(key, 0) + event.total_tokens
                    if event.api_key_id:
                        when = last_used.get(event.api_key_id, event.created_at)
                        last_used[event.api_key_id] = max(event.created_at, when)
                if spent:
                    lost |= self._quota.spend_in(session, spent)
                touch_keys(session=session, last_used=last_used)
            if beats is not None:
                lost |= self._quota.heartbeat_in(session, beats)
        return len(written), lost
