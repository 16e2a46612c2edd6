"""Token attribution (oldest allocation first) and calendar months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jaif.allocations.service import months_later
from jaif.allocations.token_quota import attribute


@dataclass
class Bucket:
    amount: float
    used: float = 0.0


def test_fifo_fills_the_oldest_first():
    a, b, c = Bucket(100), Bucket(50), Bucket(1000)
    assert attribute(120, [a, b, c]) == 0
    assert (a.used, b.used, c.used) == (100, 20, 0)
    assert attribute(40, [a, b, c]) == 0
    assert (a.used, b.used, c.used) == (100, 50, 10)


def test_what_no_bucket_takes_is_returned():
    a = Bucket(10, used=5)
    assert attribute(20, [a]) == 15
    assert a.used == 10
    assert attribute(5, []) == 5


def test_nothing_to_attribute():
    a = Bucket(10)
    assert attribute(0, [a]) == 0 and a.used == 0


def test_months_later():
    assert months_later(datetime(2026, 1, 31, 8, tzinfo=UTC), 1) == datetime(2026, 2, 28, 8, tzinfo=UTC)
    assert months_later(datetime(2026, 11, 15, tzinfo=UTC), 3) == datetime(2027, 2, 15, tzinfo=UTC)
    assert months_later(datetime(2028, 1, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    assert months_later(datetime(2026, 5, 1, tzinfo=UTC), 12) == datetime(2027, 5, 1, tzinfo=UTC)
