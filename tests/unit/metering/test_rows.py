"""Usage records turned into driver payloads (metering/rows.py), without a database: the tally the COPY
pass keeps on the way must be the one tally() computes, and the COPY rows must be well formed."""

from __future__ import annotations

import dataclasses
import struct

from jaif.metering.rows import COPY_COLUMNS, ROW_COLUMNS, BinaryCopy, LedgerEntry, orm_rows, sqlite_rows, tally


def _records() -> list[LedgerEntry]:
    base = 1_764_171_601.0
    out = []
    for i in range(50):
        out.append(
            LedgerEntry(
                id=f"req-{i}", created_at=base + i * 0.37, project_id=f"p{i % 3}",
                api_key_id=None if i % 5 == 0 else f"k{i % 4}", endpoint="chat.completions", model="m",
                replica="http://r/v1", stream=i % 2 == 0, prompt_tokens=i, completion_tokens=2 * i,
                usage_source="upstream", latency_ms=1.5, ttft_ms=None if i % 2 else 0.25, status="ok",
                status_code=200, lease_id=None if i % 7 == 0 else f"lease{i % 2}",
                client_request_id=None if i % 2 == 0 else f"client-{i}",
            )
        )  # fmt: skip
    return out


def test_the_copy_and_sqlite_passes_tally_what_tally_does():
    records = _records()
    for convert in (BinaryCopy(), sqlite_rows):
        spent: dict = {}
        last_used: dict = {}
        convert(records, spent, last_used)
        assert (spent, last_used) == tally(records)
        assert sum(spent.values()) == sum(r.prompt_tokens + r.completion_tokens for r in records)


def test_copy_rows_carry_every_column_and_null_for_none():
    records = _records()[:2]  # the first: no key, a ttft; the second: a key, no ttft
    data = BinaryCopy()(records, {}, {})
    fields = []
    offset = 0
    for _ in records:
        (count,) = struct.unpack_from(">h", data, offset)
        offset += 2
        row = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, offset)
            offset += 4
            row.append(None if length == -1 else data[offset : offset + length])
            offset += max(length, 0)
        fields.append(dict(zip(COPY_COLUMNS, row, strict=True)))
    assert offset == len(data)
    first, second = fields
    assert first["id"] == b"req-0" and first["api_key_id"] is None and first["ttft_ms"] is not None
    assert second["api_key_id"] == b"k1" and second["ttft_ms"] is None
    assert first["client_request_id"] is None and second["client_request_id"] == b"client-1"
    assert struct.unpack(">q", second["total_tokens"])[0] == 3
    assert struct.unpack(">q", first["created_at"])[0] == (1_764_171_601 - 946_684_800) * 1_000_000


def test_sqlite_rows_round_times_to_the_microsecond_within_their_second():
    record = dataclasses.replace(_records()[0], created_at=1_764_171_601.9999996)
    # 1_764_171_601.9999996 rounds up to the next second with datetime; kept in its own here.
    (row,) = sqlite_rows([record], {}, {})
    assert row[1].endswith(".999999")
    assert row[10] == record.prompt_tokens + record.completion_tokens


def test_every_driver_pass_puts_each_named_field_in_its_column():
    """SQLite rows and the ORM's dicts carry each LedgerEntry field in the column of that name."""
    record = _records()[3]
    (row,) = sqlite_rows([record], {}, {})
    (orm,) = orm_rows([record])
    by_name = dict(zip(ROW_COLUMNS, row, strict=True))
    for name in ROW_COLUMNS:
        if name in ("created_at", "total_tokens"):
            continue
        assert by_name[name] == getattr(record, name) == orm[name], name
    assert by_name["total_tokens"] == orm["total_tokens"] == 9
