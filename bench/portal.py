"""Portal pages under load: home, usage and operator pages with a front door of realistic size; p95 < 200 ms.

    .venv/bin/python bench/portal.py [--database-url URL] [--requests 200] [--concurrency 8]
                                     [--workers 1 2] [--reuse] [--scale 1.0] [--no-write]

1. Creates the PostgreSQL database named in --database-url afresh, migrates it and loads it with COPY
   (bench/portal_data.py: 1,000 organisations, 20,000 users, 10,000 projects with members and keys,
   100,000 applications in every state with events and reviews, their allocations, 1,000,000 usage
   records over 90 days, 100,000 Slurm accounting records). ``--reuse`` keeps a database loaded before.
2. Counts the SQL statements each page runs and times the allocation sweep, in this process (the app
   built by create_app, driven through httpx's ASGI transport): N+1 queries show up here.
3. Starts ``jaif serve`` on that database, signs in through the login form (CSRF token, session cookie)
   as an ordinary user (a member of 4 projects, one of them the busiest), a reviewer and an operator, and requests
   each page --requests times one after another, then --requests times from --concurrency clients at
   once. A page that answers 404 is reported as not built yet; any other non-200 answer is an error.

Client, server and PostgreSQL share this machine's cores; the figures are wall-clock latencies as the
client sees them, body included. Writes them into bench/RESULTS.md between the portal markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from harness import JAIF, free_port, process, write_section  # noqa: E402
from portal_data import (  # noqa: E402
    DEFAULT_URL,
    OPERATOR_EMAIL,
    PASSWORD,
    REVIEWER_EMAIL,
    USER_EMAIL,
    libpq,
    load,
)

ACCOUNTS = (("user", USER_EMAIL), ("reviewer", REVIEWER_EMAIL), ("operator", OPERATOR_EMAIL))
TARGET_MS = 200.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    label: str
    who: str  # "user" | "reviewer" | "operator"
    path: str  # may hold {project} (the user's busiest project) and {call} (a call id)


# What the issue names: the home, usage and operator pages (applications with filters, allocations,
# calls with time-to-access), plus the pages a user reaches from home.
PAGES = [
    Page("home", "user", "/"),
    Page("home", "operator", "/"),
    Page("project page, busiest project", "user", "/projects/{project}"),
    Page("usage, own projects, 30 days", "user", "/usage"),
    Page("usage, own projects, 90 days", "user", "/usage?days=90"),
    Page("usage, busiest project, 90 days", "user", "/usage?project={project}&days=90"),
    Page("usage, busiest project, 90 days", "operator", "/usage?project={project}&days=90"),
    Page("my applications", "user", "/applications"),
    Page("operator: console (time-to-access, energy and CO2 per call, 365 days)", "operator", "/operator"),
    Page("operator: console, energy and CO2 of all time", "operator", "/operator?energy=all"),
    Page("project files, busiest project", "user", "/projects/{project}/files"),
    Page("chat (conversations, projects and models)", "user", "/chat"),
    Page("notifications", "user", "/notifications"),
    Page("operator: calls", "operator", "/operator/calls"),
    Page("operator: applications", "operator", "/operator/applications"),
    Page("operator: applications, state=submitted", "operator", "/operator/applications?state=submitted"),
    Page("operator: applications, call+state", "operator",
         "/operator/applications?call=fast-lane&state=technical_review"),
    Page("operator: applications, page 50", "operator", "/operator/applications?page=50"),
    Page("operator: allocations", "operator", "/operator/allocations"),
    Page("operator: allocations, status=active", "operator", "/operator/allocations?status=active"),
    Page("operator: allocations, page 50", "operator", "/operator/allocations?page=50"),
    Page("operator: organisations", "operator", "/operator/organisations"),
    Page("home", "reviewer", "/"),
    Page("review queue (about 200 reviews)", "reviewer", "/review"),
    # The REST API behind the same services, for comparison (not pages). GET /api/v1/allocations is left
    # out: it returns every allocation (18 MB of JSON for an operator here, seconds per request).
    Page("API: applications, state=submitted", "operator", "/api/v1/applications?state=submitted"),
    Page("API: time-to-access, Fast Lane", "operator", "/api/v1/calls/fast-lane/time-to-access"),
]


@dataclass
class Figures:
    status: str = "ok"
    sequential: list[float] = field(default_factory=list)
    concurrent: dict[int, tuple[list[float], float]] = field(default_factory=dict)  # workers: times, seconds
    queries: int | None = None
    query_ms: float | None = None
    bytes: int = 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- signing in ------------------------------------------------------------------------------------


def sign_in(client: httpx.Client, email: str) -> None:
    """The portal's own sign-in: the form's CSRF token, then the form posted; leaves the session cookie."""
    form = client.get("/login")
    token = CSRF.search(form.text)
    if token is None:
        raise SystemExit("no CSRF token on /login")
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "next": "/",
                                         "csrf_token": token.group(1)})
    if answer.status_code not in (302, 303) or "jaif_session" not in client.cookies:
        raise SystemExit(f"signing in as {email} failed: {answer.status_code} {answer.text[:300]}")


async def async_sign_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/login")
    token = CSRF.search(form.text)
    if token is None:
        raise SystemExit("no CSRF token on /login")
    answer = await client.post("/login", data={"email": email, "password": PASSWORD, "next": "/",
                                               "csrf_token": token.group(1)})
    if answer.status_code not in (302, 303):
        raise SystemExit(f"signing in as {email} failed: {answer.status_code} {answer.text[:300]}")


# --- in process: statements per page, the sweep ---------------------------------------------------------


def count_queries(database_url: str, data_dir: str, paths: dict[str, str], pages: list[Page],
                  figures: dict[int, Figures]) -> float:
    """Run each page once in this process and count its SQL statements; returns the sweep's seconds."""
    from sqlalchemy import Engine, event

    from jaif.allocations import service as allocations
    from jaif.app import create_app
    from jaif.config import Settings
    from jaif.db.engine import transaction

    counter = {"n": 0, "s": 0.0}

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["t0"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        counter["n"] += 1
        counter["s"] += time.perf_counter() - conn.info.get("t0", time.perf_counter())

    settings = Settings(database_url=database_url, inference={"builtin_models": False}, data_dir=data_dir)
    app = create_app(settings)

    async def run() -> float:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            clients = {}
            for who, email in ACCOUNTS:
                clients[who] = httpx.AsyncClient(transport=transport, base_url="http://portal.test")
                await async_sign_in(clients[who], email)
            event.listen(Engine, "before_cursor_execute", before)
            event.listen(Engine, "after_cursor_execute", after)
            try:
                for n, page in enumerate(pages):
                    await clients[page.who].get(paths[page.path])  # warm: caches, compiled statements
                    counter.update(n=0, s=0.0)
                    answer = await clients[page.who].get(paths[page.path])
                    if answer.status_code == 200:
                        figures[n].queries, figures[n].query_ms = counter["n"], counter["s"] * 1000
            finally:
                event.remove(Engine, "before_cursor_execute", before)
                event.remove(Engine, "after_cursor_execute", after)
                for client in clients.values():
                    await client.aclose()
            started = time.perf_counter()
            await asyncio.to_thread(lambda: _sweep(app, transaction, allocations))
            return time.perf_counter() - started

    return asyncio.run(run())


def _sweep(app, transaction, allocations) -> None:
    with transaction(app.state.runtime.session_factory) as session:
        allocations.sweep(session=session)


# --- against the real server ---------------------------------------------------------------------------


def measure(base: str, paths: dict[str, str], pages: list[Page], figures: dict[int, Figures], args, *,
            workers: int, sequential: bool) -> None:
    cookies = {}
    for who, email in ACCOUNTS:
        with httpx.Client(base_url=base, timeout=60) as client:
            sign_in(client, email)
            cookies[who] = dict(client.cookies)
    clients = {who: httpx.Client(base_url=base, cookies=c, timeout=60) for who, c in cookies.items()}
    try:
        for n, page in enumerate(pages):
            client, path, fig = clients[page.who], paths[page.path], figures[n]
            first = client.get(path)
            if first.status_code == 404:
                fig.status = "not built yet (404)"
                continue
            if first.status_code != 200:
                fig.status = f"error {first.status_code}"
                continue
            fig.bytes = len(first.content)
            for _ in range(5):  # warm up
                client.get(path)
            for _ in range(args.requests if sequential else 0):
                t = time.perf_counter()
                answer = client.get(path)
                fig.sequential.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    fig.status = f"error {answer.status_code} under load"
            fig.concurrent[workers] = _concurrently(base, cookies[page.who], path, args)
            print(f"  {page.label} ({page.who}), {workers} worker(s): sequential p95 {pct(fig.sequential, 95):.1f} "
                  f"ms; c={args.concurrency} p95 {pct(fig.concurrent[workers][0], 95):.1f} ms", flush=True)
    finally:
        for client in clients.values():
            client.close()


def _concurrently(base: str, cookies: dict, path: str, args) -> tuple[list[float], float]:
    per_client = max(1, args.requests // args.concurrency)

    def worker(_: int) -> list[float]:
        times = []
        with httpx.Client(base_url=base, cookies=cookies, timeout=60) as client:
            for _ in range(per_client):
                t = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} under concurrent load")
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(worker, range(args.concurrency)))
    return [t for r in results for t in r], time.perf_counter() - started


# --- the report ------------------------------------------------------------------------------------------


def rows_of(pages: list[Page], figures: dict[int, Figures], args) -> list[str]:
    rows = []
    for n, page in enumerate(pages):
        fig = figures[n]
        if fig.status != "ok" or not fig.sequential:
            rows.append(f"| {page.label} | {page.who} | {fig.status} |" + " |" * (len(args.workers) + 3))
            continue
        seq = fig.sequential
        cells, misses = [], []
        if pct(seq, 95) >= TARGET_MS:
            misses.append(f"sequential {pct(seq, 95):.0f} ms")
        for workers in args.workers:
            times, seconds = fig.concurrent[workers]
            cells.append(f"{pct(times, 50):.1f} / {pct(times, 95):.1f} / {pct(times, 99):.1f} "
                         f"({len(times) / seconds:.0f} req/s)")
            if pct(times, 95) >= TARGET_MS:
                misses.append(f"{workers} worker(s) {pct(times, 95):.0f} ms")
        verdict = "yes" if not misses else "**no**: " + ", ".join(misses)
        queries = f"{fig.queries} ({fig.query_ms:.1f} ms)" if fig.queries is not None else "?"
        rows.append(
            f"| {page.label} | {page.who} | {pct(seq, 50):.1f} / {pct(seq, 95):.1f} / {pct(seq, 99):.1f} "
            f"| {' | '.join(cells)} | {queries} | {fig.bytes / 1024:.0f} KiB | {verdict} |"
        )
    return rows


def write(rows: list[str], *, command: str, preamble: list[str], args) -> None:
    concurrent = [f"c={args.concurrency}, {w} worker{'s' if w > 1 else ''}: p50 / p95 / p99 ms" for w in args.workers]
    header = ["page", "signed in as", "sequential p50 / p95 / p99 ms", *concurrent, "SQL statements (time in DB)",
              "size", "p95 < 200 ms"]
    write_section("portal", [*preamble, "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|", *rows])


def _counts(database_url: str) -> dict[str, int]:
    tables = ["organisations", "users", "projects", "project_members", "api_keys", "applications",
              "application_events", "reviews", "allocations", "usage_records", "usage_daily", "compute_job_records"]
    with psycopg.connect(libpq(database_url)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608


def _context(database_url: str) -> dict[str, str]:
    """The user's busiest project and nothing else the pages need to know."""
    with psycopg.connect(libpq(database_url)) as conn:
        row = conn.execute(
            "SELECT m.project_id FROM project_members m JOIN users u ON u.id = m.user_id "
            "LEFT JOIN (SELECT project_id, count(*) n FROM usage_records GROUP BY project_id) c "
            "ON c.project_id = m.project_id WHERE u.email = %s ORDER BY c.n DESC NULLS LAST LIMIT 1", (USER_EMAIL,)
        ).fetchone()
    if row is None:
        raise SystemExit(f"{USER_EMAIL} is not in the database: load it first (drop --reuse)")
    return {"project": row[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database, created afresh")
    parser.add_argument("--requests", type=int, default=200, help="requests per page, sequential and concurrent")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once in the concurrent run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="jaif serve --workers for the concurrent runs (the sequential one uses the first)")
    parser.add_argument("--reuse", action="store_true", help="keep the database loaded by an earlier run")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set (quick tries)")
    parser.add_argument("--only", default=None, help="measure only pages whose label contains this")
    parser.add_argument("--no-write", action="store_true", help="print, do not write bench/RESULTS.md")
    args = parser.parse_args()

    load_s = None
    if not args.reuse:
        print("loading the data set ...", flush=True)
        loaded = load(args.database_url, scale=args.scale)
        load_s = loaded.seconds
    counts = _counts(args.database_url)
    ctx = _context(args.database_url)
    pages = [p for p in PAGES if args.only is None or args.only in p.label]
    paths = {p.path: p.path.format(**ctx) for p in pages}
    figures = {n: Figures() for n in range(len(pages))}

    print("counting SQL statements per page (in process) ...", flush=True)
    data_dir = tempfile.mkdtemp(prefix="jaif-portal-bench-")
    sweep_s = count_queries(args.database_url, data_dir, paths, pages, figures)
    print(f"the allocation sweep took {sweep_s:.2f} s", flush=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAIF_")}
    env.update(JAIF_DATABASE_URL=args.database_url, JAIF_INFERENCE__BUILTIN_MODELS="false",
               JAIF_WEB__LOG_LEVEL="warning", JAIF_DATA_DIR=data_dir)
    load_avg = os.getloadavg()
    try:
        for n, workers in enumerate(args.workers):
            port = free_port()
            print(f"measuring against jaif serve --workers {workers} ...", flush=True)
            with process([JAIF, "serve", "--port", str(port), "--workers", str(workers)], env,
                         f"http://127.0.0.1:{port}/healthz"):
                measure(f"http://127.0.0.1:{port}", paths, pages, figures, args, workers=workers,
                        sequential=n == 0)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    load_avg_after = os.getloadavg()

    rows = rows_of(pages, figures, args)
    print("\n".join(rows))
    if args.no_write:
        return
    data = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items())
    loaded_note = f" loaded in {load_s:.0f} s with COPY" if load_s is not None else " (loaded by an earlier run)"
    command = "python bench/portal.py " + " ".join(sys.argv[1:])
    preamble = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL, server and load generator on the same machine; load average "
        f"{load_avg[0]:.1f} before, {load_avg_after[0]:.1f} after, this benchmark's own load included). "
        f"Command: `{command}`",
        "",
        f"Data set:{loaded_note}: {data}. Signed in through the login form. Per page: {args.requests} requests one "
        f"after another (`jaif serve --workers {args.workers[0]}`), then {args.requests} from {args.concurrency} "
        f"clients at once, each client asking again as soon as it has its answer (closed loop, no pause: the "
        f"server is saturated, so p95 there is about {args.concurrency} x the time per page divided by what the "
        f"cores can run at once), once per worker count. SQL statements: counted for one request in process. The "
        f"allocation sweep each server runs every 60 s took {sweep_s:.2f} s on this data set.",
    ]
    write(rows, command=command, preamble=preamble, args=args)


if __name__ == "__main__":
    main()
