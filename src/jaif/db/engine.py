"""Engine and session factory. Built once per process from Settings and passed down; never at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

CONNECT_TIMEOUT_S = 5  # PostgreSQL: seconds to wait for a connection to be made


def normalise_url(url: str) -> str:
    """Let users write postgresql:// and still get psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions (see _begin_immediate).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the one writer; several `jaif serve` processes share the file.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn) -> None:
            # Take the write lock up front: a deferred transaction that reads and then writes fails at
            # once with SQLITE_BUSY when another process wrote in between, instead of waiting its turn.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args=_connect_args(url))


def _connect_args(url: str) -> dict:
    """A short connect timeout for PostgreSQL: a host that drops packets fails in seconds (an outage,
    jaif/dependencies.py), not after the kernel's two minutes of retries."""
    return {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}


def make_async_engine(url: str) -> AsyncEngine:
    """An asyncio engine (psycopg's async connections) for PostgreSQL work done on the event loop."""
    return create_async_engine(normalise_url(url), pool_pre_ping=True, pool_size=2, max_overflow=2,
                               connect_args=_connect_args(normalise_url(url)))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on error."""
    with factory() as session, session.begin():
        yield session
