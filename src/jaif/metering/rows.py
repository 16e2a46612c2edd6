"""Usage records as the ledger queues them (LedgerEntry), and turned into what the database driver
takes: one pass per batch, at flush time.

The request path only builds one LedgerEntry (a dataclass with slots, built positionally: well under
a microsecond) and appends it to the writer's queue (UsageWriter.record). Timestamps, totals, the
spend per lease and keys' last use are worked out here, once per batch, in tight loops: done per
request they had been most of what metering cost a request (bench/gateway.py, metering on vs off).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from jaif.metering.models import UsageRecord


@dataclass(slots=True)
class LedgerEntry:
    """One request's usage record, queued until the next flush: the usage_records columns that are not
    derived (total_tokens is), created_at as seconds since the epoch, and the quota lease its tokens
    were reserved from (not a column; None where the project has no quota).

    Filled in two steps, one object per request: the gateway builds it with how the request ended (as
    metering.meter.Outcome, positionally); Meter.finish fills in whose it is and when, and queues it."""

    id: str  # the request id
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
    client_request_id: str | None = None  # the x-request-id the client sent, where it sent a sane one
    created_at: float = 0.0
    project_id: str = ""
    api_key_id: str | None = None
    lease_id: str | None = None


ENTRY_FIELDS = tuple(f.name for f in fields(LedgerEntry))
# Rows as SQLite (and SQLAlchemy) take them.
ROW_COLUMNS = (
    "id", "created_at", "project_id", "api_key_id", "endpoint", "model", "replica", "stream",
    "prompt_tokens", "completion_tokens", "total_tokens", "usage_source", "latency_ms", "ttft_ms",
    "status", "status_code", "client_request_id",
)  # fmt: skip
# PostgreSQL's COPY: the columns that repeat from one request to the next last, so that their bytes
# are one cached piece per distinct combination (BinaryCopy).
COPY_COLUMNS = (
    "id", "created_at", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
    "client_request_id",
    "project_id", "api_key_id", "endpoint", "model", "replica", "usage_source", "status", "stream", "status_code",
)  # fmt: skip
if {c.name for c in UsageRecord.__table__.columns} != set(ROW_COLUMNS) or set(COPY_COLUMNS) != set(ROW_COLUMNS):
    raise RuntimeError("usage_records changed: update metering/rows.py (LedgerEntry)")
if set(ENTRY_FIELDS) != set(ROW_COLUMNS) - {"total_tokens"} | {"lease_id"}:
    raise RuntimeError("LedgerEntry and ROW_COLUMNS disagree: update metering/rows.py")

_EPOCH_2000 = 946_684_800  # PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC
_NULL = struct.pack(">i", -1)  # a NULL field of COPY's binary format
_LENGTH = struct.Struct(">i")
_MEMO_LIMIT = 10_000  # cached pieces of COPY data per writer; past that the cache starts afresh


Spent = dict[tuple[str, str | None], int]  # tokens per (project id, lease id)


def tally(records: list[LedgerEntry]) -> tuple[Spent, dict[str, float]]:
    """Tokens per (project, lease), to turn into spend; and each key's newest record (epoch seconds)."""
    spent: Spent = {}
    last_used: dict[str, float] = {}
    for record in records:
        key = (record.project_id, record.lease_id)
        spent[key] = spent.get(key, 0) + record.prompt_tokens + record.completion_tokens
        api_key = record.api_key_id
        if api_key is not None and record.created_at > last_used.get(api_key, 0.0):
            last_used[api_key] = record.created_at
    return spent, last_used


def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S.")


def _micro(when: float, second: int) -> int:
    # Rounded as datetime.fromtimestamp rounds, but never into the next second.
    return min(int((when - second) * 1_000_000 + 0.5), 999_999)


class BinaryCopy:
    """Records in the binary format of PostgreSQL's ``COPY usage_records (COPY_COLUMNS) FROM STDIN
    (FORMAT BINARY)``: a few struct packs a record, where the text format's formatting of numbers and
    times cost twice as much here and again in the server's parsing. The bytes of the columns that
    repeat from one request to the next (project, key, model, replica...) are built once per distinct
    combination and kept in a cache. The column types are those of migration-made usage_records
    (varchar, timestamptz, bigint, double precision, boolean, integer): test_the_usage_writer_stores_what_the_orm_would
    checks them on PostgreSQL."""

    HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # signature, flags, no header extension
    TRAILER = struct.pack(">h", -1)

    def __init__(self) -> None:
        self._tails: dict[tuple, bytes] = {}
        self._heads: dict[tuple[int, bool], struct.Struct] = {}

    def __call__(self, records: list[LedgerEntry], spent: Spent, last_used: dict[str, float]) -> bytes:
        """The records' COPY rows; adds their tally (see tally()) to ``spent`` and ``last_used`` on the
        way, in the same pass."""
        tails, heads = self._tails, self._heads
        if len(tails) > _MEMO_LIMIT:
            tails.clear()
        parts: list[bytes] = []
        append = parts.append
        for record in records:
            when, project, key, ttft = record.created_at, record.project_id, record.api_key_id, record.ttft_ms
            prompt, completion, latency = record.prompt_tokens, record.completion_tokens, record.latency_ms
            second = int(when)
            micros = (second - _EPOCH_2000) * 1_000_000 + _micro(when, second)
            raw_id = record.id.encode()
            n = len(raw_id)
            head = heads.get((n, ttft is None))
            if head is None:
                head = heads[(n, ttft is None)] = self._head(n, ttft is None)
            total = prompt + completion
            if ttft is None:
                append(head.pack(17, n, raw_id, 8, micros, 8, prompt, 8, completion, 8, total, 8, latency, -1))
            else:
                append(head.pack(17, n, raw_id, 8, micros, 8, prompt, 8, completion, 8, total, 8, latency, 8, ttft))
            client_id = record.client_request_id
            if client_id is None:
                append(_NULL)
            else:
                raw_client_id = client_id.encode()
                append(_LENGTH.pack(len(raw_client_id)) + raw_client_id)
            tail_key = (
                project, key, record.endpoint, record.model, record.replica, record.usage_source, record.status,
                record.stream, record.status_code,
            )  # fmt: skip
            tail = tails.get(tail_key)
            if tail is None:
                tail = tails[tail_key] = self._tail(tail_key)
            append(tail)
            spent_key = (project, record.lease_id)
            spent[spent_key] = spent.get(spent_key, 0) + total
            if key is not None and when > last_used.get(key, 0.0):
                last_used[key] = when
        return b"".join(parts)

    @staticmethod
    def _head(id_length: int, no_ttft: bool) -> struct.Struct:
        """Field count, then (length, value) for id, created_at, the three token counts, latency_ms and
        ttft_ms (length -1 and no value: NULL); client_request_id follows, then the cached tail."""
        return struct.Struct(f">hi{id_length}s" + "iq" * 4 + "id" + ("i" if no_ttft else "id"))

    @staticmethod
    def _tail(values: tuple) -> bytes:
        *texts, stream, code = values
        out = b""
        for text in texts:
            data = None if text is None else text.encode()
            out += struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data
        return out + struct.pack(">ib", 1, bool(stream)) + struct.pack(">ii", 4, code)


def sqlite_rows(records: list[LedgerEntry], spent: Spent, last_used: dict[str, float]) -> list[tuple]:
    """Rows in ROW_COLUMNS order, created_at in SQLite's text form of UTCDateTime; adds the records'
    tally to ``spent`` and ``last_used`` in the same pass, as BinaryCopy does."""
    rows = []
    second, prefix = -1, ""
    for r in records:
        when, project, key = r.created_at, r.project_id, r.api_key_id
        prompt, completion = r.prompt_tokens, r.completion_tokens
        if int(when) != second:
            second = int(when)
            prefix = _second(second)
        total = prompt + completion
        rows.append(
            (r.id, f"{prefix}{_micro(when, second):06}", project, key, r.endpoint, r.model, r.replica, r.stream,
             prompt, completion, total, r.usage_source, r.latency_ms, r.ttft_ms, r.status, r.status_code,
             r.client_request_id)
        )  # fmt: skip
        spent_key = (project, r.lease_id)
        spent[spent_key] = spent.get(spent_key, 0) + total
        if key is not None and when > last_used.get(key, 0.0):
            last_used[key] = when
    return rows


def orm_rows(records: list[LedgerEntry]) -> list[dict]:
    """Rows as SQLAlchemy's executemany takes them (any other driver): dicts, created_at a datetime."""
    return [
        {
            **{name: getattr(record, name) for name in ENTRY_FIELDS if name != "lease_id"},
            "created_at": datetime.fromtimestamp(record.created_at, UTC),
            "total_tokens": record.prompt_tokens + record.completion_tokens,
        }
        for record in records
    ]
