"""Accounting import of 100,000 sacct records: parse, energy, charge to allocations, write; target 10 s.

    .venv/bin/python bench/accounting.py [--records 100000] [--projects 1000] [--database-url URL]

Generates the records in the format jaif reads from Slurm (``sacct -a -n -P --format=...``: an
allocation line and a batch step line per job, 200,000 lines for 100,000 jobs) for jobs of 1,000 projects
on the JUPITER profile's booster partition, then times ``import_accounting`` end to end into a fresh,
migrated database (SQLite by default; a PostgreSQL database named in the URL is created afresh and
dropped at the end): parsing, the power model, charging the projects' allocations and
writing the records in batches. Then times a second import of the same records (all already there).
Writes the figures into bench/RESULTS.md (compute section).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).parent))
from compute_results import write  # noqa: E402
from portal_data import admin_url, recreate  # noqa: E402

import jaif.db.models  # noqa: E402,F401
from jaif.access.models import Organisation, Project  # noqa: E402
from jaif.allocations.models import Allocation  # noqa: E402
from jaif.compute.accounting import import_accounting  # noqa: E402
from jaif.compute.backend import Compute  # noqa: E402
from jaif.compute.models import JobRecord  # noqa: E402
from jaif.compute.naming import project_account  # noqa: E402
from jaif.compute.slurm import parse_sacct  # noqa: E402
from jaif.config import Settings  # noqa: E402
from jaif.db.base import new_id  # noqa: E402
from jaif.db.engine import make_engine, make_session_factory, transaction  # noqa: E402
from jaif.db.migrate import upgrade  # noqa: E402

FMT = "%Y-%m-%dT%H:%M:%S"


def sacct_lines(n: int, accounts: list[str], now: datetime) -> list[str]:
    rng = random.Random(4)
    lines = []
    for i in range(n):
        job_id = 1_000_000 + i
        nodes = rng.choice((1, 1, 1, 2, 4, 16))
        gpus = nodes * 4
        elapsed = rng.randint(1, 86400)
        end = now - timedelta(seconds=rng.randint(60, 20 * 86400))
        start = end - timedelta(seconds=elapsed)
        submit = start - timedelta(seconds=rng.randint(0, 3600))
        state = rng.choice(("COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "CANCELLED by 1234", "TIMEOUT"))
        times = "|".join(t.astimezone().strftime(FMT) for t in (submit, start, end))
        energy = str(rng.randint(10**5, 10**9)) if i % 3 == 0 else ""
        account = accounts[i % len(accounts)]
        lines.append(f"{job_id}|train|user{i % 9973}|{account}|booster|{state}|{times}|{elapsed}|"
                     f"billing={gpus * 72},cpu={nodes * 288},gres/gpu={gpus},mem={nodes * 480}G,node={nodes}|{nodes}||"
                     "jupiter")
        lines.append(f"{job_id}.batch|batch||{account}||{state.split()[0]}|{times}|{elapsed}|"
                     f"cpu=288,gres/gpu=4,mem=480G,node=1|1|{energy}|jupiter")
    return lines


class GeneratedSacct:
    """The Slurm scheduler's accounting, from generated sacct output instead of a running sacct."""

    kind = "slurm"
    cluster = "jupiter"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def partitions(self):
        return None

    def accounting(self, *, since: datetime):
        return (e for e in parse_sacct(self.lines) if e.ended_at >= since)


def setup(url: str, projects: int) -> list[str]:
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    orgs = [{"id": new_id(), "name": f"Org {i}", "sector": "academia", "country": "DE", "created_at": now}
            for i in range(max(1, projects // 10))]
    rows = [{"id": new_id(), "name": f"proj{i:04d}", "organisation_id": orgs[i % len(orgs)]["id"], "description": "",
             "is_active": True, "tokens_spent": 0, "tokens_leased": 0, "tokens_attributed": 0, "created_at": now}
            for i in range(projects)]
    window = {"starts_at": now - timedelta(days=60), "ends_at": now + timedelta(days=300)}
    allocations = [{"id": new_id(), "project_id": p["id"], "resource": "gpu_hours", "partition": "booster",
                    "amount": 1e9, "used": 0.0, "status": "active", "created_at": now, **window} for p in rows]
    with engine.begin() as conn:
        conn.execute(insert(Organisation), orgs)
        conn.execute(insert(Project), rows)
        conn.execute(insert(Allocation), allocations)
    engine.dispose()
    return [project_account(p["name"]) for p in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch", type=int, default=10_000, help="compute.accounting_batch")
    args = parser.parse_args()
    if args.database_url and args.database_url.startswith("postgresql"):
        recreate(args.database_url)
    try:
        run(args)
    finally:
        if args.database_url and args.database_url.startswith("postgresql"):
            drop(args.database_url)


def drop(database_url: str) -> None:
    admin, name = admin_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        accounts = setup(url, args.projects)
        lines = sacct_lines(args.records, accounts, datetime.now(UTC))
        settings = Settings(database_url=url, data_dir=Path(tmp),
                            compute={"site": "jupiter", "accounting_batch": args.batch})
        compute = Compute(settings, GeneratedSacct(lines))
        engine = make_engine(url)
        factory = make_session_factory(engine)
        since = datetime.now(UTC) - timedelta(days=30)
        t0, c0 = time.perf_counter(), time.process_time()
        first = import_accounting(session_factory=lambda: transaction(factory), compute=compute, since=since)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        second = import_accounting(session_factory=lambda: transaction(factory), compute=compute, since=since)
        again = time.perf_counter() - t0
        with transaction(factory) as session:
            charged = session.scalar(select(func.sum(Allocation.used)))
            stored = session.scalar(select(func.count()).select_from(JobRecord))
        engine.dispose()
    assert first.imported == args.records == stored and second.imported == 0, (first, second, stored)
    assert abs(charged - first.gpu_hours) < 1e-6 * max(1.0, charged)
    backend = url.split(":", 1)[0].split("+")[0]
    print(f"imported {first.imported} records in {took:.2f} s ({cpu:.2f} s CPU, {first.imported / took:.0f}/s); "
          f"again (all already there) in {again:.2f} s; {first.gpu_hours:.0f} GPU-hours charged")
    rows = [
        f"| accounting import ({backend}), {args.records:,} sacct records ({2 * args.records:,} lines), "
        f"{args.projects:,} projects | {took:.2f} s wall, {cpu:.2f} s CPU in jaif "
        f"({first.imported / took:,.0f} records/s; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores), {first.gpu_hours:,.0f} GPU-hours charged | ≤ 10 s | {{when}} |",
        f"| accounting import ({backend}) again, the same {args.records:,} records (nothing new) | {again:.2f} s, "
        f"0 charged | idempotent | {{when}} |",
    ]
    write(f"accounting import ({backend})", rows, "python bench/accounting.py " + " ".join(sys.argv[1:]))

if __name__ == "__main__":
    main()
