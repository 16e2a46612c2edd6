"""Test databases: a fresh SQLite file, or a fresh database on the PostgreSQL named by
JAIF_TEST_DATABASE_URL (created per test or module and dropped after, so runs never share state).

``Databases`` (the session fixture ``test_databases`` in tests/conftest.py) makes fresh databases
migrated to head cheaply: the migrations run once per session into a template (a SQLite file; a
PostgreSQL database), and each fresh database is a copy of it (the SQLite backup API; PostgreSQL's
``CREATE DATABASE … TEMPLATE``), milliseconds instead of a second or more of Alembic per test. The
migrations themselves are tested from an empty database in tests/integration/test_migrations.py.

It also drops PostgreSQL databases in batches: every ``DROP DATABASE`` forces a checkpoint of the whole
cluster (PostgreSQL 15), which costs a test up to seconds on a busy disk, while the drops that follow
the first one of a batch find little left to write.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jaif.db.engine import normalise_url
from jaif.db.migrate import upgrade


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


def one_database(*, default_install: bool = False) -> pytest.MarkDecorator:
    """For an end-to-end module whose subject is not the database (the gateway's input validation, its
    OpenAI conformance, a built-in model's options): ``pytestmark = one_database()`` runs its tests once,
    on PostgreSQL where JAIF_TEST_DATABASE_URL is set (what production runs), else on SQLite, instead
    of once per database: a `jaif serve` and every request twice bought nothing the integration tests
    (on both databases) and the end-to-end tests about the database (quotas, rate limits, outages,
    workers: still on both) do not already check. It parametrises the module-scoped ``module_env``.
    ``default_install``: on SQLite always, the database `make run` and `jaif init` set up (the README's
    quick start, the portal journey from a fresh install)."""
    if default_install or not postgres_admin_url():
        kind = "sqlite"
    else:
        kind = pytest.param("postgres", marks=pytest.mark.postgres)
    return pytest.mark.parametrize("module_env", [kind], indirect=True, scope="module")


def _admin(*statements: str) -> None:
    admin = postgres_admin_url()
    assert admin
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def create_postgres_database(*, template: str | None = None) -> str:
    """A new database (a copy of the database ``template`` names, if given); returns its URL."""
    admin = postgres_admin_url()
    assert admin
    name = f"jaif_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


class Databases:
    """Fresh databases for one test session, migrated to head by copying a template (see the module's
    docstring); PostgreSQL ones dropped in batches of ``batch`` and at ``close()``."""

    def __init__(self, folder: Path, *, batch: int = 16) -> None:
        self.folder = folder
        self.batch = batch
        self._sqlite_template: Path | None = None
        self._postgres_template: str | None = None  # its URL
        self._to_drop: list[str] = []

    def sqlite_template(self) -> Path:
        if self._sqlite_template is None:
            path = self.folder / "template.db"
            upgrade(f"sqlite:///{path}")
            self._sqlite_template = path
        return self._sqlite_template

    def postgres_template(self) -> str:
        """The name of a PostgreSQL database migrated to head (made on first use, dropped at ``close``);
        nothing connects to it after its migration, as CREATE DATABASE … TEMPLATE requires."""
        if self._postgres_template is None:
            url = create_postgres_database()
            upgrade(url)  # Alembic's engine is disposed once it is done: no connection stays open
            self._postgres_template = url
        return make_url(self._postgres_template).database or ""

    def sqlite(self, path: Path) -> str:
        """A SQLite database at ``path`` (which must not exist yet), migrated to head."""
        assert not path.exists(), path
        path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(self.sqlite_template())
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return f"sqlite:///{path}"

    def postgres(self, *, migrated: bool) -> str:
        """A new PostgreSQL database, empty or migrated to head; give it back with ``drop``."""
        return create_postgres_database(template=self.postgres_template() if migrated else None)

    def migrate(self, url: str) -> str:
        """Bring the fresh, empty database at ``url`` to head, as `jaif db upgrade` would; returns ``url``.
        A PostgreSQL one is replaced by a copy of the template under the same name (nothing may be
        connected to it)."""
        parsed = make_url(normalise_url(url))
        if parsed.get_backend_name() == "sqlite":
            path = Path(parsed.database or "")
            if path.exists() and path.stat().st_size == 0:
                path.unlink()
            self.sqlite(path)
            return url
        name = parsed.database
        empty = f"{name}_empty_{uuid.uuid4().hex[:6]}"
        _admin(f'ALTER DATABASE "{name}" RENAME TO "{empty}"',
               f'CREATE DATABASE "{name}" TEMPLATE "{self.postgres_template()}"')
        self.drop(parsed.set(database=empty).render_as_string(hide_password=False))
        return url

    def drop(self, url: str) -> None:
        """Drop a PostgreSQL database of this session's, with the next batch."""
        self._to_drop.append(url)
        if len(self._to_drop) >= self.batch:
            self._drop_pending()

    def _drop_pending(self) -> None:
        pending, self._to_drop = self._to_drop, []
        if pending:
            _admin(*(f'DROP DATABASE IF EXISTS "{make_url(u).database}" WITH (FORCE)' for u in pending))

    def close(self) -> None:
        if self._postgres_template is not None:
            self._to_drop.append(self._postgres_template)
            self._postgres_template = None
        self._drop_pending()
