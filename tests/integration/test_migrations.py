"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
downgrade cleanly."""

from __future__ import annotations

import warnings

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import SAWarning

from jaif.db.engine import make_engine
from jaif.db.migrate import alembic_config, upgrade
from jaif.db.models import Base

# Indexes on expressions, which SQLAlchemy cannot reflect from SQLite (it and Alembic skip them, and say so):
# compared on PostgreSQL, and on SQLite checked by their SQL in sqlite_master instead.
EXPRESSION_INDEXES = {"ix_users_email_lower": "lower(email)"}


def test_migrations_match_the_models(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn, warnings.catch_warnings():
        if sqlite:
            for name in EXPRESSION_INDEXES:
                warnings.filterwarnings("ignore", f"Skipped unsupported reflection of expression-based index {name}$",
                                        SAWarning)
                warnings.filterwarnings("ignore", f".*skipping metadata-specified expression-based index '{name}'",
                                        UserWarning)
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        if sqlite:
            made = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all())
            for name, expression in EXPRESSION_INDEXES.items():
                assert expression in (made.get(name) or "").lower(), f"migrations lack the index {name}"
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_sign_in_looks_users_up_through_the_lower_email_index(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM users WHERE lower(email) = 'a@b.example'")))
        else:
            conn.execute(text("SET enable_seqscan = off"))  # an empty table: make the planner show it could
            plan = " ".join(r[0] for r in conn.execute(
                text("EXPLAIN SELECT id FROM users WHERE lower(email) = 'a@b.example'")))
    engine.dispose()
    assert "ix_users_email_lower" in plan, plan


def test_downgrade_to_nothing_and_back(database_url):
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "base")
    engine = make_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    assert {"usage_records", "applications", "allocations"} <= set(inspect(engine).get_table_names())
    engine.dispose()
