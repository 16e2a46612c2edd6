"""Which server runs the deployments' controller: exactly one of those that share a database.

The leader holds a lock that dies with it, and every other server tries to take it on each of its
ticks, so a new leader takes over within ``deployments.interval_s`` of the old one's end:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection the leader keeps open;
  PostgreSQL releases it when that connection closes (the process ended, the host or network failed).
  Servers on several hosts sharing one database elect one leader.
- SQLite (one host by nature): an exclusive ``flock`` on ``<database>.deployments.lock`` beside the
  database file, which the kernel releases when the process ends. Several ``jaif serve`` processes
  or workers on the machine elect one leader.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x6A6169665F6470  # "jaif_dp": the deployments controller's advisory lock


class Leadership:
    """``held()``: whether this process leads now (taking the lock when it is free)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._file: IO[str] | None = None
        self._held = False
        # held() runs in the controller's thread, close() in the server's shutdown: one at a time on the
        # connection (a tick still running when the server stops must not share it).
        self._lock = threading.Lock()

    def _lock_file(self) -> Path | None:
        """None for an in-memory SQLite database: only this process sees it, so it leads."""
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        return Path(f"{os.path.abspath(database)}.deployments.lock")

    @property
    def leading(self) -> bool:
        """Whether this server ran the controller at its last tick (no check: /healthz shows it)."""
        return self._held

    def held(self) -> bool:
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        was = self._held
        if self.engine.dialect.name == "postgresql":
            self._held = self._postgres()
        else:
            self._held = self._flock()
        if self._held != was:
            log.info("deployments: this server %s the controller", "now runs" if self._held else "no longer runs")
        return self._held

    def _postgres(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if self._held:
                self._conn.execute(text("SELECT 1"))  # the lock lives as long as this connection
                return True
            return bool(self._conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}))
        except DBAPIError as exc:
            if self._held:  # only a leader has a lock to lose; the others just try again at the next tick
                log.warning("deployments: lost the database connection that holds the controller's lock: %s", exc)
            self._drop_connection()
            return False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except DBAPIError:
                pass
        self._conn = None

    def _flock(self) -> bool:
        path = self._lock_file()
        if self._file is not None or path is None:
            return True
        f = open(path, "a")  # noqa: SIM115 - held open as the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file = f
        return True

    def close(self) -> None:
        """Give the lock up (a server that stops): another server takes over at its next tick."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._conn is not None:
            if self._held:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                except DBAPIError:
                    pass
            self._drop_connection()
        self._held = False
