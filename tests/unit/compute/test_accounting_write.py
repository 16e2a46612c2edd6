"""The accounting import's fast write path stores times exactly as SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from jaif.db.base import UTCDateTime, sqlite_time


@pytest.mark.parametrize("value", [
    datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 1, 1, 0, 0, 1),  # naive: taken as UTC
    None,
])
def test_sqlite_time_is_what_sqlalchemy_binds(value):
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert sqlite_time(value) == process(value)
