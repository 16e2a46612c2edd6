"""Dependencies a test may stop: a PostgreSQL cluster and a Redis of the test's own, on free ports, and
`jaif serve` with its log in a file (so a test can read what an outage wrote).

Never the shared services on 5432 and 6379: other runs use them. Skips where the binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.procs import JAIF, free_port, stop, wait_for, wait_http


def _pg_bin() -> Path:
    """The newest PostgreSQL server binaries Debian installed (/usr/lib/postgresql/<version>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, on a free port; ``stop()`` and ``start()`` at will."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql")
        self.root = Path(tempfile.mkdtemp(prefix="jaif-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.getuid() == 0:  # PostgreSQL refuses to run as root: as its own account
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(self.data), "--no-sync")

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # stopped already
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class PrivateRedis:
    """redis-server on a free port, without persistence; ``stop()`` kills it, ``start()`` brings it
    back on the same port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            assert wait_for(lambda: _pings(client), bool, timeout=15), "redis-server did not start"
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, sig=signal.SIGKILL)
            self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def logged_server(env: dict[str, str], log: Path, *, timeout: float = 120.0) -> Iterator[str]:
    """`jaif serve` on a free port with its output in ``log``; yields its base URL."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([JAIF, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=timeout, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)
