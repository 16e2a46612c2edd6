"""Shared fixtures: databases (SQLite and, where configured, PostgreSQL) and platform set-ups."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import databases
from tests.support.procs import base_env


@pytest.fixture(scope="session", autouse=True)
def _job_accounts_reach_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Local jobs run as their project's own account (compute/isolation.py), which must traverse the
    folders above its jobs directory; pytest makes its base temporary folder (/tmp/pytest-of-<user>)
    owner-only (0700), so tests whose jobs directory lies in tmp_path would be refused. Traverse
    permission only (o+x, no listing) on the base folder and its parents below the system's temp folder."""
    base = tmp_path_factory.getbasetemp().resolve()
    for folder in (base, *base.parents):
        if folder == Path(tempfile.gettempdir()).resolve() or folder == folder.parent:
            break
        if folder.stat().st_uid == os.getuid():
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's tmp_path, with traverse permission for others (o+x, no listing): a jobs directory inside
    it (compute.jobs_dir under data_dir) must be reachable by the job's own account."""
    tmp_path.chmod(tmp_path.stat().st_mode | stat.S_IXOTH)
    return tmp_path


def _database_params() -> list:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def test_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[databases.Databases]:
    """The session's databases: fresh ones migrated by copying a template migrated once
    (``test_databases.migrate(url)``), PostgreSQL ones dropped in batches (tests/support/databases.py)."""
    made = databases.Databases(tmp_path_factory.mktemp("databases"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=_database_params())
def database_url(request, tmp_path: Path, test_databases: databases.Databases) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jaif.db'}"
        return
    reason = databases.postgres_reason()
    if reason:
        pytest.skip(reason)
    url = test_databases.postgres(migrated=False)
    try:
        yield url
    finally:
        test_databases.drop(url)


@pytest.fixture
def jaif_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for jaif subprocesses on that database, without the built-in models."""
    return base_env(
        JAIF_DATABASE_URL=database_url,
        JAIF_DATA_DIR=str(tmp_path / "var"),
        JAIF_INFERENCE__BUILTIN_MODELS="false",
        JAIF_METERING__FLUSH_INTERVAL_S="0.2",
    )
