"""Shared pieces of the benchmarks: a throw-away jaif set-up, processes, wrk, an asyncio SSE client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
JAIF = str(Path(sys.executable).parent / "jaif")


RESULTS = Path(__file__).parent / "RESULTS.md"


def write_section(name: str, lines: list[str]) -> None:
    """Put ``lines`` between RESULTS.md's ``<!-- name:start -->`` and ``<!-- name:end -->`` markers, replacing
    what stood there, or append them as a new section."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = "\n".join([start, *lines, end])
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _postgres_admin(database_url: str) -> tuple[str, str]:
    """A libpq URL of the server's ``postgres`` database, and the name of the database in ``database_url``."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.database:
        raise SystemExit(f"the database URL must name a database: {database_url}")
    return url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False), url.database


def _postgres_database(database_url: str, *, create: bool) -> None:
    """Drop the PostgreSQL database named in ``database_url`` if it exists, and create it afresh if ``create``."""
    import psycopg
    from psycopg import sql

    admin, name = _postgres_admin(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class Setup:
    """A fresh database with one organisation, one project (unlimited tokens unless given) and a key.

    SQLite in a temporary folder unless ``database_url`` is given; a PostgreSQL database named there is
    created afresh (dropping one of that name) and dropped again by cleanup()."""

    def __init__(self, *, database_url: str | None = None, builtin: bool = False, token_quota: int | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="jaif-bench-"))
        self.postgres = database_url if database_url and database_url.startswith("postgresql") else None
        if self.postgres:
            _postgres_database(self.postgres, create=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JAIF_")}
        self.env.update(
            JAIF_DATABASE_URL=database_url or f"sqlite:///{self.dir / 'jaif.db'}",
            JAIF_INFERENCE__BUILTIN_MODELS="true" if builtin else "false",
        )
        self.cli("init" if builtin else "db", *([] if builtin else ["upgrade"]))
        self.cli("org", "create", "Bench", "--sector", "academia", "--country", "DE")
        quota = ["--token-quota", str(token_quota)] if token_quota else []
        self.cli("project", "create", "bench", "--org", "Bench", *quota)
        self.key = self.cli("key", "create", "--project", "bench").strip().splitlines()[-1]

    def cli(self, *args: str) -> str:
        return subprocess.run([JAIF, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def usage(self) -> dict:
        return json.loads(self.cli("usage", "--project", "bench", "--json").strip().splitlines()[-1])

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.postgres:
            _postgres_database(self.postgres, create=False)


class Served(str):
    """A server's base URL that also knows the server's process id (for cpu_seconds)."""

    pid: int


def served(url: str, pid: int) -> Served:
    out = Served(url)
    out.pid = pid
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and all its threads and child processes
    (uvicorn's workers), read from /proc: a figure the machine's other load barely moves."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(cpu_seconds(int(child)) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


@contextmanager
def process(argv: list[str], env: dict[str, str], health: str):
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(health)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def upstream(env: dict[str, str], *, delay_ms: float = 0, tokens: int = 16):
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "jaif.testing.upstream",
        "--port",
        str(port),
        "--delay-ms",
        str(delay_ms),
        "--tokens",
        str(tokens),
    ]
    with process(argv, env, f"http://127.0.0.1:{port}/v1/models") as proc:
        yield served(f"http://127.0.0.1:{port}/v1", proc.pid)


@contextmanager
def gateway(env: dict[str, str], *, workers: int = 1, extra_env: dict[str, str] | None = None, metered: bool = True):
    """`jaif serve`; ``metered=False``: the same server without metering and quotas (bench/unmetered.py)."""
    port = free_port()
    serve = [JAIF, "serve"] if metered else [sys.executable, str(Path(__file__).parent / "unmetered.py")]
    with process(
        [*serve, "--port", str(port), "--workers", str(workers)],
        {**env, **(extra_env or {})},
        f"http://127.0.0.1:{port}/healthz",
    ) as proc:
        yield served(f"http://127.0.0.1:{port}/v1", proc.pid)


def wrk(url: str, body: dict, key: str, *, connections: int, duration: float, servers: tuple = ()) -> dict:
    """Run wrk (one thread) with a JSON POST body; returns requests/s, latency percentiles (ms), errors,
    and CPU microseconds per request: wrk's own (``client_us``) and each of ``servers``' (``cpu_us``)."""
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{json.dumps(body)}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    before = [cpu_seconds(server.pid) for server in servers]
    client_before = os.times()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    client_after = os.times()
    after = [cpu_seconds(server.pid) for server in servers]
    lua.unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = max(1, int(re.search(r"(\d+) requests in", out).group(1)))
    client_s = (client_after.children_user + client_after.children_system) - (
        client_before.children_user + client_before.children_system
    )
    pct = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": pct.get("50"),
        "p99_ms": pct.get("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1) if sock else "",
        "client_us": client_s / requests * 1e6,
        "cpu_us": [(b - a) / requests * 1e6 for a, b in zip(before, after, strict=True)],
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def _stream_load(url: str, body: dict, key: str, connections: int, duration: float) -> dict:
    """Streaming requests from `connections` concurrent clients; time to first event and throughput."""
    ttfts: list[float] = []
    done = 0
    failed = 0
    deadline = time.perf_counter() + duration
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = json.dumps(body).encode()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                first = None
                async with session.post(url, data=payload) as response:
                    if response.status != 200:
                        failed += 1
                        await response.read()
                        continue
                    async for _line in response.content:
                        if first is None:
                            first = time.perf_counter() - start
                ttfts.append(first * 1000)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ttfts.sort()
    return {
        "rps": done / elapsed,
        "ttft_p50_ms": statistics.median(ttfts) if ttfts else None,
        "ttft_p99_ms": ttfts[int(len(ttfts) * 0.99) - 1] if ttfts else None,
        "errors": failed,
        "streams": done,
    }


def stream_load(url: str, body: dict, key: str, *, connections: int, duration: float, servers: tuple = ()) -> dict:
    """Streams from ``connections`` clients; with CPU microseconds per stream of this client
    (``client_us``) and of each of ``servers`` (``cpu_us``), as wrk()."""
    before = [cpu_seconds(server.pid) for server in servers]
    client_before = time.process_time()
    result = asyncio.run(_stream_load(url, body, key, connections, duration))
    client_s = time.process_time() - client_before
    after = [cpu_seconds(server.pid) for server in servers]
    streams = max(1, result["streams"])
    result["client_us"] = client_s / streams * 1e6
    result["cpu_us"] = [(b - a) / streams * 1e6 for a, b in zip(before, after, strict=True)]
    return result
