"""Run Alembic migrations programmatically (``jaif db upgrade`` and first start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from jaif.db.engine import normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check_current(database_url: str) -> None:
    """Refuse to serve a database whose schema is behind the code, with the command that fixes it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from jaif.db.engine import make_engine
    from jaif.errors import Unavailable

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if current != head:
        raise Unavailable(f"the database is at revision {current}, the code needs {head}: run `jaif db upgrade`")
