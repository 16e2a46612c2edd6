"""Queued usage records turned into what the database driver takes: one pass per batch, at flush time.

The request path only appends a plain tuple in RECORD order (UsageWriter.record, well under a
microsecond). Timestamps, totals, the spend per lease and keys' last use are worked out here, once per
batch, in tight loops: done per request they had been most of what metering cost a request
(bench/gateway.py, metering on vs off).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from jaif.metering.models import UsageRecord

# A queued record: the usage_records columns that are not derived (total_tokens is), created_at as
# seconds since the epoch, and the quota lease its tokens were reserved from (not a column).
RECORD = (
    "id", "created_at", "project_id", "api_key_id", "endpoint", "model", "replica", "stream",
    "prompt_tokens", "completion_tokens", "usage_source", "latency_ms", "ttft_ms", "status", "status_code",
    "lease_id",
)  # fmt: skip
# Rows as SQLite (and SQLAlchemy) take them.
ROW_COLUMNS = (
    "id", "created_at", "project_id", "api_key_id", "endpoint", "model", "replica", "stream",
    "prompt_tokens", "completion_tokens", "total_tokens", "usage_source", "latency_ms", "ttft_ms",
    "status", "status_code",
)  # fmt: skip
# PostgreSQL's COPY: the columns that repeat from one request to the next last, so that their bytes
# are one cached piece per distinct combination (BinaryCopy).
COPY_COLUMNS = (
    "id", "created_at", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
    "project_id", "api_key_id", "endpoint", "model", "replica", "usage_source", "status", "stream", "status_code",
)  # fmt: skip
if {c.name for c in UsageRecord.__table__.columns} != set(ROW_COLUMNS) or set(COPY_COLUMNS) != set(ROW_COLUMNS):
    raise RuntimeError("usage_records changed: update metering/rows.py and UsageWriter.record")

_EPOCH_2000 = 946_684_800  # PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC
_MEMO_LIMIT = 10_000  # cached pieces of COPY data per writer; past that the cache starts afresh


Spent = dict[tuple[str, str | None], int]  # tokens per (project id, lease id)


def tally(records: list[tuple]) -> tuple[Spent, dict[str, float]]:
    """Tokens per (project, lease), to turn into spend; and each key's newest record (epoch seconds)."""
    spent: Spent = {}
    last_used: dict[str, float] = {}
    for record in records:
        key = (record[2], record[15])
        spent[key] = spent.get(key, 0) + record[8] + record[9]
        api_key = record[3]
        if api_key is not None and record[1] > last_used.get(api_key, 0.0):
            last_used[api_key] = record[1]
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

    def __call__(self, records: list[tuple], spent: Spent, last_used: dict[str, float]) -> bytes:
        """The records' COPY rows; adds their tally (see tally()) to ``spent`` and ``last_used`` on the
        way, in the same pass."""
        tails, heads = self._tails, self._heads
        if len(tails) > _MEMO_LIMIT:
            tails.clear()
        parts: list[bytes] = []
        append = parts.append
        for (
            rid, when, project, key, endpoint, model, replica, stream, prompt, completion, source, latency, ttft,
            status, code, _lease,
        ) in records:  # fmt: skip
            second = int(when)
            micros = (second - _EPOCH_2000) * 1_000_000 + _micro(when, second)
            raw_id = rid.encode()
            n = len(raw_id)
            head = heads.get((n, ttft is None))
            if head is None:
                head = heads[(n, ttft is None)] = self._head(n, ttft is None)
            total = prompt + completion
            if ttft is None:
                append(head.pack(16, n, raw_id, 8, micros, 8, prompt, 8, completion, 8, total, 8, latency, -1))
            else:
                append(head.pack(16, n, raw_id, 8, micros, 8, prompt, 8, completion, 8, total, 8, latency, 8, ttft))
            tail_key = (project, key, endpoint, model, replica, source, status, stream, code)
            tail = tails.get(tail_key)
            if tail is None:
                tail = tails[tail_key] = self._tail(tail_key)
            append(tail)
            spent_key = (project, _lease)
            spent[spent_key] = spent.get(spent_key, 0) + total
            if key is not None and when > last_used.get(key, 0.0):
                last_used[key] = when
        return b"".join(parts)

    @staticmethod
    def _head(id_length: int, no_ttft: bool) -> struct.Struct:
        """Field count, then (length, value) for id, created_at, the three token counts, latency_ms and
        ttft_ms (length -1 and no value: NULL)."""
        return struct.Struct(f">hi{id_length}s" + "iq" * 4 + "id" + ("i" if no_ttft else "id"))

    @staticmethod
    def _tail(values: tuple) -> bytes:
        *texts, stream, code = values
        out = b""
        for text in texts:
            data = None if text is None else text.encode()
            out += struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data
        return out + struct.pack(">ib", 1, bool(stream)) + struct.pack(">ii", 4, code)


def sqlite_rows(records: list[tuple], spent: Spent, last_used: dict[str, float]) -> list[tuple]:
    """Rows in ROW_COLUMNS order, created_at in SQLite's text form of UTCDateTime; adds the records'
    tally to ``spent`` and ``last_used`` in the same pass, as BinaryCopy does."""
    rows = []
    second, prefix = -1, ""
    for (
        rid, when, project, key, endpoint, model, replica, stream, prompt, completion, source, latency, ttft,
        status, code, lease,
    ) in records:  # fmt: skip
        if int(when) != second:
            second = int(when)
            prefix = _second(second)
        total = prompt + completion
        rows.append(
            (rid, f"{prefix}{_micro(when, second):06}", project, key, endpoint, model, replica, stream, prompt,
             completion, total, source, latency, ttft, status, code)
        )  # fmt: skip
        spent_key = (project, lease)
        spent[spent_key] = spent.get(spent_key, 0) + total
        if key is not None and when > last_used.get(key, 0.0):
            last_used[key] = when
    return rows


def orm_rows(records: list[tuple]) -> list[dict]:
    """Rows as SQLAlchemy's executemany takes them (any other driver): dicts, created_at a datetime."""
    return [
        {
            **dict(zip(RECORD[:-1], record[:-1], strict=True)),
            "created_at": datetime.fromtimestamp(record[1], UTC),
            "total_tokens": record[8] + record[9],
        }
        for record in records
    ]
