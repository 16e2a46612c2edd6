"""Batches against a real database (SQLite, and PostgreSQL where configured)."""

from __future__ import annotations

from tests.support.services import engine, factory, migrated_url, session, world  # noqa: F401
