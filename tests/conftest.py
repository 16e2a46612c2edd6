"""Shared fixtures: databases (SQLite and, where configured, PostgreSQL) and platform set-ups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import databases
from tests.support.procs import base_env


def _database_params() -> list:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_database_params())
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jaif.db'}"
        return
    reason = databases.postgres_reason()
    if reason:
        pytest.skip(reason)
    url = databases.create_postgres_database()
    try:
        yield url
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture
def jaif_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for jaif subprocesses on that database, without the built-in models."""
    return base_env(
        JAIF_DATABASE_URL=database_url,
        JAIF_DATA_DIR=str(tmp_path / "var"),
        JAIF_INFERENCE__BUILTIN_MODELS="false",
        JAIF_METERING__FLUSH_INTERVAL_S="0.2",
    )
