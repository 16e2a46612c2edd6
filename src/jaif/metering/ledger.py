"""The usage ledger writer: one record per request, written in batches off the request path.

Records are queued in memory and flushed every ``flush_interval_s`` (and on shutdown) in one
transaction that also turns their tokens into project spend (QuotaManager.spend_in), so the usage
table and the quota books can never disagree. A failed flush keeps the batch and tries again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import insert
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
        self._pending.append(event)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, *, heartbeat: bool = False) -> int:
        async with self._lock:
            written = 0
            while self._pending or heartbeat:
                batch, self._pending = self._pending[: self._max_rows], self._pending[self._max_rows :]
                try:
                    await asyncio.to_thread(self._write, batch, heartbeat)
                except Exception:
                    # Keep the batch: it is retried on the next flush; the log tells the operator.
                    log.exception("writing %d usage records failed; will retry", len(batch))
                    self._pending[:0] = batch
                    raise
                heartbeat = False
                written += len(batch)
            self.written += written
            return written

    def _write(self, batch: list[UsageEvent], heartbeat: bool) -> None:
        spent: dict[str, tuple[int, bool]] = {}
        last_used: dict[str, datetime] = {}
        rows = []
        for event in batch:
            row = asdict(event)
            row.pop("leased")
            row["total_tokens"] = event.total_tokens
            rows.append(row)
            tokens, _ = spent.get(event.project_id, (0, event.leased))
            spent[event.project_id] = (tokens + event.total_tokens, event.leased)
            if event.api_key_id:
                last_used[event.api_key_id] = max(event.created_at, last_used.get(event.api_key_id, event.created_at))
        with transaction(self._factory) as session:
            if rows:
                session.execute(insert(UsageRecord), rows)
                self._quota.spend_in(session, spent)
                touch_keys(session=session, last_used=last_used)
            if heartbeat:
                self._quota.heartbeat_in(session)
