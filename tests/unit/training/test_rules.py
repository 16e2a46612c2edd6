"""When registration is open, decided without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from jaif.training.service import registration_open

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(*, starts: timedelta, closes: timedelta | None = None, published: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        starts_at=NOW + starts,
        registration_closes_at=NOW + closes if closes is not None else None,
        is_published=published,
    )


def test_open_until_the_deadline_or_else_the_start():
    assert registration_open(event(starts=timedelta(days=1)), NOW)
    assert not registration_open(event(starts=timedelta(0)), NOW)
    assert registration_open(event(starts=timedelta(days=1), closes=timedelta(seconds=1)), NOW)
    assert not registration_open(event(starts=timedelta(days=1), closes=timedelta(0)), NOW)


def test_never_open_for_an_unpublished_event():
    assert not registration_open(event(starts=timedelta(days=1), published=False), NOW)
