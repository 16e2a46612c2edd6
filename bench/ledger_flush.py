"""The usage writer's flush alone: what writing a batch of usage records costs, with and without the daily
roll-up's triggers (migration 0039), on PostgreSQL (COPY) and SQLite (multi-row INSERTs).

    .venv/bin/python bench/ledger_flush.py [--database-url URL] [--batches 30] [--batch 1000] [--projects 50]

For each database and each schema (0038: before the roll-up; head: with it) a fresh database, then
``--batches`` flushes of ``--batch`` records each, spread over ``--projects`` projects, 3 keys each and 4
models, all of today (the busiest case for the roll-up: every flush updates rows that exist). Prints the
median and p95 of a flush and the median per record. The PostgreSQL database named in the URL is created
afresh and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from harness import _postgres_database  # noqa: E402

from jaif.access import service as access  # noqa: E402
from jaif.config import MeteringSettings  # noqa: E402
from jaif.db.engine import make_engine, make_session_factory, transaction  # noqa: E402
from jaif.db.migrate import upgrade  # noqa: E402
from jaif.metering.meter import Meter  # noqa: E402
from jaif.metering.rows import LedgerEntry  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/jaif_ledger_bench"
BEFORE = "0038_application_origin_index"
MODELS = ["llama-3.3-70b-instruct", "mistral-small-24b", "qwen2.5-coder-32b", "bge-m3"]


async def run(url: str, revision: str, args) -> list[float]:
    upgrade(url, revision)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        access.create_organisation(session=session, name="Org", sector="academia", country="DE")
        projects = [access.create_project(session=session, name=f"p{i}", organisation="Org", token_quota=None).id
                    for i in range(args.projects)]  # fmt: skip
    settings = MeteringSettings(flush_max_rows=args.batch)
    meter = Meter(factory, settings, holder=f"bench:{uuid.uuid4().hex[:8]}")
    rng = random.Random(7)
    keys = {p: [uuid.uuid4().hex for _ in range(3)] for p in projects}
    times = []
    try:
        for _ in range(args.batches):
            for _ in range(args.batch):
                project = rng.choice(projects)
                meter.ledger.record(LedgerEntry(
                    uuid.uuid4().hex[:28], "chat.completions", rng.choice(MODELS), None, False, rng.randint(10, 2000),
                    rng.randint(1, 500), "upstream", 12.5, None, "ok", 200, None, time.time(), project,
                    rng.choice(keys[project]), None))  # fmt: skip
            started = time.perf_counter()
            assert await meter.ledger.flush() == args.batch
            times.append(time.perf_counter() - started)
    finally:
        await meter.ledger.aclose()
        engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL database, created afresh")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--projects", type=int, default=50)
    args = parser.parse_args()
    for name in ("postgresql", "sqlite"):
        for revision in (BEFORE, "head"):
            with tempfile.TemporaryDirectory() as folder:
                url = args.database_url if name == "postgresql" else f"sqlite:///{folder}/ledger.db"
                if name == "postgresql":
                    _postgres_database(url, create=True)
                try:
                    times = asyncio.run(run(url, revision, args))[3:]  # the first flushes warm up
                finally:
                    if name == "postgresql":
                        _postgres_database(url, create=False)
            ms = sorted(t * 1000 for t in times)
            print(f"{name:10} {'with roll-up' if revision == 'head' else 'without':12} flush of {args.batch}: "
                  f"median {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, "
                  f"{statistics.median(ms) * 1000 / args.batch:.1f} µs per record", flush=True)


if __name__ == "__main__":
    main()
