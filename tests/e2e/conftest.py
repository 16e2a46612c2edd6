"""Fixtures the end-to-end tests share: platforms of real `jaif` processes on a real database.

``platform`` builds everything per test. ``module_env`` is a fresh database per test module (SQLite,
and PostgreSQL where JAIF_TEST_DATABASE_URL is set), for modules that start one `jaif serve` and run
many requests against it: starting the processes costs seconds, a request milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import databases
from tests.support.procs import base_env, jaif, last_line, server, upstream


@pytest.fixture
def platform(jaif_env, test_databases):
    """A project with a key, a model on the stand-in upstream, and jaif serving it."""
    test_databases.migrate(jaif_env["JAIF_DATABASE_URL"])
    jaif(jaif_env, "org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    jaif(jaif_env, "project", "create", "alpha", "--org", "Uni A", "--token-quota", "100000")
    key = last_line(jaif(jaif_env, "key", "create", "--project", "alpha"))
    with upstream(jaif_env) as (url, _proc):
        jaif(jaif_env, "model", "add", "fake-chat", "--upstream", url, "--alias", "default-chat")
        with server(jaif_env) as base:
            yield {"base": base, "key": key, "env": jaif_env}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_env(request, tmp_path_factory, test_databases: databases.Databases) -> Iterator[dict[str, str]]:
    """Like ``jaif_env``, on a fresh database shared by the tests of one module; migrated already (a copy
    of the session's migrated template: tests/support/databases.py)."""
    tmp = tmp_path_factory.mktemp("jaif")
    if request.param == "sqlite":
        url = test_databases.sqlite(tmp / "jaif.db")
    else:
        reason = databases.postgres_reason()
        if reason:
            pytest.skip(reason)
        url = test_databases.postgres(migrated=True)
    env = base_env(
        JAIF_DATABASE_URL=url,
        JAIF_DATA_DIR=str(tmp / "var"),
        JAIF_INFERENCE__BUILTIN_MODELS="false",
        JAIF_METERING__FLUSH_INTERVAL_S="0.2",
    )
    try:
        yield env
    finally:
        if request.param == "postgres":
            test_databases.drop(url)
