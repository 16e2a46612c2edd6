"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
downgrade cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from jaif.db.engine import make_engine
from jaif.db.migrate import alembic_config, upgrade
from jaif.db.models import Base


def test_migrations_match_the_models(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


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
