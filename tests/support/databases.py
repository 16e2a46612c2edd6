"""Test databases: a fresh SQLite file, or a fresh database on the PostgreSQL named by
JAIF_TEST_DATABASE_URL (created per test session and dropped after, so runs never share state)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jaif.db.engine import normalise_url


def postgres_admin_url() -> str | None:
    url = os.environ.get("JAIF_TEST_DATABASE_URL")
    return normalise_url(url) if url else None


def postgres_reason() -> str | None:
    """None when PostgreSQL is usable, else why the PostgreSQL tests skip."""
    url = postgres_admin_url()
    if not url:
        return "JAIF_TEST_DATABASE_URL is not set (.ci/run sets it to the PostgreSQL at 127.0.0.1:5432)"
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)} is not reachable: {exc}"
    return None


def create_postgres_database() -> str:
    admin = postgres_admin_url()
    assert admin
    name = f"jaif_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    admin = postgres_admin_url()
    assert admin
    name = make_url(url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
