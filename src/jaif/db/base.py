"""Declarative base with a naming convention so Alembic migrations name constraints the same everywhere."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from jaif.errors import InvalidRequest

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_time(value: datetime | None) -> str | None:
    """What UTCDateTime binds for SQLite (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), in a fraction of the time of
    SQLAlchemy's bind processor: for the bulk writers (usage records, accounting) that bypass it.
    tests/unit/compute/test_accounting_write.py checks that the two agree."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def contains_pattern(text: str, *, param: str) -> str:
    """A LIKE pattern (escape character ``\\``) that finds ``text`` anywhere, case-folded: its ``%``,
    ``_`` and ``\\`` match themselves. A NUL character, which PostgreSQL refuses in a string, is the
    caller's mistake: InvalidRequest naming ``param``."""
    if "\x00" in text:
        raise InvalidRequest(f"{param} must not contain NUL characters", param=param)
    return "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
