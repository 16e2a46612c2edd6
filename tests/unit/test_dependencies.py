"""jaif/dependencies.py: which errors are outages (raised by the real drivers against ports where
nothing listens), and the log and gauge of an outage."""

from __future__ import annotations

import logging
import os

import pytest
import redis
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from jaif.db.engine import normalise_url
from jaif.dependencies import DATABASE, REDIS, DependencyHealth, outage_of, unavailable
from jaif.errors import DependencyUnavailable, Unavailable
from tests.support.procs import free_port


def test_a_refused_database_connection_is_a_database_outage():
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2")
    with pytest.raises(Exception) as raised, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert outage_of(raised.value) == DATABASE
    wrapped = RuntimeError("flush failed")
    wrapped.__cause__ = raised.value
    assert outage_of(wrapped) == DATABASE


def test_a_refused_redis_connection_is_a_redis_outage():
    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=2)
    with pytest.raises(redis.RedisError) as raised:
        client.ping()
    client.close()
    assert outage_of(raised.value) == REDIS


def test_a_bug_is_no_outage(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    table.metadata.create_all(engine)
    with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1}, {"id": 1}])
    engine.dispose()
    assert outage_of(raised.value) is None
    assert outage_of(ValueError("no")) is None


def test_a_locked_sqlite_file_and_a_missing_table_are_no_outage(tmp_path):
    """Errors of one request (OperationalErrors too) must not mark the database down for the process."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0})
    with engine.connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, held
        with pytest.raises(OperationalError) as locked, engine.connect() as other:
            other.exec_driver_sql("BEGIN IMMEDIATE")
        holder.exec_driver_sql("ROLLBACK")
    assert "locked" in str(locked.value) and outage_of(locked.value) is None
    with pytest.raises(OperationalError) as missing, engine.connect() as connection:
        connection.execute(text("SELECT * FROM nowhere"))
    assert outage_of(missing.value) is None
    engine.dispose()
    unopenable = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(OperationalError) as gone, unopenable.connect():
        pass
    assert outage_of(gone.value) == DATABASE


def test_a_statement_timeout_on_postgresql_is_no_outage():
    url = os.environ.get("JAIF_TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("JAIF_TEST_DATABASE_URL names no PostgreSQL (.ci/run sets it to the one at 127.0.0.1:5432)")
    engine = create_engine(normalise_url(url))
    try:
        with pytest.raises(OperationalError) as cancelled, engine.connect() as connection:
            connection.exec_driver_sql("SET statement_timeout = '50ms'")
            connection.exec_driver_sql("SELECT pg_sleep(2)")
    finally:
        engine.dispose()
    assert cancelled.value.orig.sqlstate == "57014"  # query_canceled: this statement's error, not the server's
    assert outage_of(cancelled.value) is None


def test_an_outage_is_a_503_with_retry_after():
    error = unavailable(DATABASE)
    assert isinstance(error, DependencyUnavailable) and isinstance(error, Unavailable)
    assert (error.status, error.code, error.to_openai()["error"]["type"]) == (
        503, "dependency_unavailable", "service_unavailable",
    )  # fmt: skip
    assert error.retry_after and error.retry_after >= 1


def test_an_outage_logs_its_start_a_count_every_ten_seconds_and_its_end(caplog):
    now = [100.0]
    registry = CollectorRegistry()
    gauge = Gauge("up", "up", ["dependency"], registry=registry)
    health = DependencyHealth([DATABASE, REDIS], gauge=gauge, clock=lambda: now[0])
    assert health.states() == {DATABASE: "ok", REDIS: "ok"}
    assert registry.get_sample_value("up", {"dependency": DATABASE}) == 1
    caplog.set_level(logging.INFO, logger="jaif.dependencies")

    health.failed(DATABASE, ConnectionRefusedError("refused"))
    for second in range(25):  # 25 s of requests, 10 a second; the failures go on too
        now[0] = 100.0 + second
        for i in range(10):
            health.affected(DATABASE, refused=i == 0)
        health.failed(DATABASE, ConnectionRefusedError("refused"))
    assert health.states() == {DATABASE: "down", REDIS: "ok"} and health.down() == [DATABASE]
    assert registry.get_sample_value("up", {"dependency": DATABASE}) == 0
    now[0] = 130.0
    health.recovered(DATABASE)
    health.recovered(DATABASE)  # not down: nothing to say

    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("database unavailable (ConnectionRefusedError: refused)")
    # The first line counts the request that wrote it: the 11th refused.
    assert lines[1].startswith("database still unavailable (10 s): 90 requests served") and "11 refused" in lines[1]
    assert lines[2].startswith("database still unavailable (20 s): 90 requests served")
    assert lines[3].startswith("database is back after 30.0 s") and "225 requests were served" in lines[3]
    assert all(r.exc_info is None for r in caplog.records)
    assert health.states()[DATABASE] == "ok"
    assert registry.get_sample_value("up", {"dependency": DATABASE}) == 1
