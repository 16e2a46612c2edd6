"""Usage records turned into driver payloads (metering/rows.py), without a database: the tally the COPY
pass keeps on the way must be the one tally() computes, and the COPY rows must be well formed."""

from __future__ import annotations

import struct

from jaif.metering.rows import COPY_COLUMNS, BinaryCopy, sqlite_rows, tally


def _records() -> list[tuple]:
    base = 1_764_171_601.0
    out = []
    for i in range(50):
        out.append(
            (f"req-{i}", base + i * 0.37, f"p{i % 3}", None if i % 5 == 0 else f"k{i % 4}", "chat.completions",
             "m", "http://r/v1", i % 2 == 0, i, 2 * i, "upstream", 1.5, None if i % 2 else 0.25, "ok", 200,
             None if i % 7 == 0 else f"lease{i % 2}")
        )  # fmt: skip
    return out


def test_the_copy_and_sqlite_passes_tally_what_tally_does():
    records = _records()
    for convert in (BinaryCopy(), sqlite_rows):
        spent: dict = {}
        last_used: dict = {}
        convert(records, spent, last_used)
        assert (spent, last_used) == tally(records)
        assert sum(spent.values()) == sum(r[8] + r[9] for r in records)


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
    assert struct.unpack(">q", second["total_tokens"])[0] == 3
    assert struct.unpack(">q", first["created_at"])[0] == (1_764_171_601 - 946_684_800) * 1_000_000


def test_sqlite_rows_round_times_to_the_microsecond_within_their_second():
    record = list(_records()[0])
    record[1] = 1_764_171_601.9999996  # rounds up to the next second with datetime; kept in its own here
    (row,) = sqlite_rows([tuple(record)], {}, {})
    assert row[1].endswith(".999999")
    assert row[10] == record[8] + record[9]
