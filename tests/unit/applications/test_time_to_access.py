"""Time-to-access arithmetic: working days (Monday to Friday) and percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jaif.applications.time_to_access import percentile, working_days

MON = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday


def test_within_a_day():
    assert working_days(MON, MON + timedelta(hours=6)) == pytest.approx(0.25)


def test_over_a_weekend():
    friday_16 = MON + timedelta(days=4, hours=7)
    monday_10 = MON + timedelta(days=7, hours=1)
    assert working_days(friday_16, monday_10) == pytest.approx(0.75)  # Friday 8 h + Monday 10 h


def test_weekends_count_nothing():
    saturday = MON.replace(hour=0) + timedelta(days=5)
    assert working_days(saturday, saturday + timedelta(days=1, hours=23)) == 0


@pytest.mark.parametrize("weeks", [1, 2, 10, 52])
def test_whole_weeks(weeks):
    assert working_days(MON, MON + timedelta(weeks=weeks)) == pytest.approx(5 * weeks)


def test_matches_counting_hour_by_hour():
    start = MON - timedelta(days=3, hours=5)
    for hours in range(0, 24 * 30, 7):
        end = start + timedelta(hours=hours)
        slow = sum(1 for h in range(hours) if (start + timedelta(hours=h)).weekday() < 5) / 24
        assert working_days(start, end) == pytest.approx(slow)


def test_backwards_is_zero():
    assert working_days(MON, MON - timedelta(days=1)) == 0


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0], 90) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([float(i) for i in range(1, 11)], 90) == pytest.approx(9.1)
