"""usage_daily, the daily roll-up that the usage page and /usage.csv read, is kept by the database's own
triggers (migration 0039): after every way records are written (the usage writer's bulk path, its path
for a batch met before, the ORM), changed or removed, it is usage_records summed per UTC day, project,
model and key, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from jaif.access import service as access
from jaif.access.models import Project
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.db.migrate import alembic_config, upgrade
from jaif.metering.ledger import UsageWriter
from jaif.metering.models import UsageDaily, UsageRecord
from jaif.metering.reports import as_date, utc_day
from tests.integration.metering.conftest import entry

Key = tuple[str, date, str, str]  # project, UTC day, model, key ("" for none)
Sums = tuple[int, int, int, int]  # requests, prompt, completion, total tokens


def summed(factory) -> dict[Key, Sums]:
    """usage_records summed per roll-up key, by a GROUP BY of their own."""
    with factory() as session:
        day = utc_day(session, UsageRecord.created_at)
        key = func.coalesce(UsageRecord.api_key_id, "")
        rows = session.execute(
            select(UsageRecord.project_id, day, UsageRecord.model, key, func.count(),
                   func.sum(UsageRecord.prompt_tokens), func.sum(UsageRecord.completion_tokens),
                   func.sum(UsageRecord.total_tokens))
            .group_by(UsageRecord.project_id, day, UsageRecord.model, key)
        ).all()  # fmt: skip
    return {(p, as_date(d), m, k): (int(n), int(a), int(b), int(c)) for p, d, m, k, n, a, b, c in rows}


def rolled_up(factory) -> dict[Key, Sums]:
    with factory() as session:
        rows = session.scalars(select(UsageDaily)).all()
        return {(r.project_id, r.day, r.model, r.api_key_id): (r.requests, r.prompt_tokens, r.completion_tokens,
                                                               r.total_tokens) for r in rows}  # fmt: skip


def add(expected: dict[Key, Sums], project: str, when: datetime, model: str, key: str | None, prompt: int,
        completion: int) -> None:  # fmt: skip
    k = (project, when.astimezone(UTC).date(), model, key or "")
    n, a, b, c = expected.get(k, (0, 0, 0, 0))
    expected[k] = (n + 1, a + prompt, b + completion, c + prompt + completion)


def orm_record(project: str, when: datetime, model: str, key: str | None, prompt: int, completion: int, rid: str):
    return UsageRecord(id=rid, created_at=when, project_id=project, api_key_id=key, endpoint="chat.completions",
                       model=model, prompt_tokens=prompt, completion_tokens=completion,
                       total_tokens=prompt + completion)  # fmt: skip


def _midnight() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)


async def test_the_roll_up_is_the_records_summed_whoever_writes_them(db):
    projects = [db.project(None) for _ in range(3)]
    with transaction(db.sessions) as session:
        key = access.create_api_key(session=session, project_name=session.get(Project, projects[0]).name)[0].id
    proc = db.proc()
    # Batches of up to 1,000: SQLite's multi-row INSERTs (64 rows each) and its one-row rest, COPY on PostgreSQL.
    writer = UsageWriter(proc.factory, proc.meter.quota, max_rows=1000)
    midnight = _midnight()
    times = [midnight - timedelta(days=1), midnight - timedelta(microseconds=1), midnight,
             midnight + timedelta(seconds=1), midnight - timedelta(days=2, hours=3)]  # fmt: skip
    expected: dict[Key, Sums] = {}
    try:
        ids = []
        for i in range(150):
            project, when, model = projects[i % 3], times[i % 5], ("m", "n")[i % 2]
            api_key = key if project == projects[0] and i % 4 else None
            record = entry(project, created_at=when.timestamp(), model=model, api_key_id=api_key,
                           prompt_tokens=i, completion_tokens=2 * i)  # fmt: skip
            writer.record(record)
            ids.append(record.id)
            add(expected, project, when, model, api_key, i, 2 * i)
        assert await writer.flush() == 150
        assert rolled_up(db.sessions) == summed(db.sessions) == expected
        assert {k[1] for k in expected} == {(midnight - timedelta(days=d)).date() for d in (0, 1, 3)}

        # A batch met before (a retried commit): the writer's other path (PostgreSQL: COPY into a temporary
        # table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING). Records skipped are not counted again.
        writer.record(entry(projects[1], request_id=ids[1], created_at=times[1].timestamp(), model="n",
                            prompt_tokens=1, completion_tokens=2))  # fmt: skip
        for i in range(3):
            writer.record(entry(projects[2], created_at=times[2].timestamp(), model="o", prompt_tokens=i,
                                completion_tokens=1))  # fmt: skip
            add(expected, projects[2], times[2], "o", None, i, 1)
        assert await writer.flush() == 3
        assert rolled_up(db.sessions) == summed(db.sessions) == expected
    finally:
        await writer.aclose()

    # Records the ORM inserts (tests, tools): one and several per statement.
    with transaction(db.sessions) as session:
        session.add(orm_record(projects[0], times[3], "m", key, 7, 8, "orm-1"))
    with transaction(db.sessions) as session:
        session.add_all([orm_record(projects[1], times[4] + timedelta(minutes=i), "p", None, 1, i, f"orm-{i + 2}")
                         for i in range(5)])  # fmt: skip
    add(expected, projects[0], times[3], "m", key, 7, 8)
    for i in range(5):
        add(expected, projects[1], times[4] + timedelta(minutes=i), "p", None, 1, i)
    assert rolled_up(db.sessions) == summed(db.sessions) == expected


async def test_deleting_or_changing_records_changes_the_roll_up(db):
    project = db.project(None)
    midnight = _midnight()
    with transaction(db.sessions) as session:
        session.add_all([orm_record(project, midnight - timedelta(hours=i), ("m", "n")[i % 2], None, i, 1, f"r{i}")
                         for i in range(8)])  # fmt: skip
    assert rolled_up(db.sessions) == summed(db.sessions)
    db.execute("DELETE FROM usage_records WHERE id IN ('r1', 'r2')")
    db.execute("DELETE FROM usage_records WHERE model = 'n'")  # r3, r5, r7: their group goes
    db.execute("UPDATE usage_records SET prompt_tokens = prompt_tokens + 10, total_tokens = total_tokens + 10")
    db.execute("UPDATE usage_records SET model = 'q', api_key_id = 'k' WHERE id = 'r4'")
    with transaction(db.sessions) as session:  # a record moved to another day
        session.get(UsageRecord, "r0").created_at = midnight - timedelta(days=3)
    after = rolled_up(db.sessions)
    assert after == summed(db.sessions)
    assert sorted(key[2:] for key in after) == [("m", ""), ("m", ""), ("q", "k")]
    assert sum(n for n, *_ in after.values()) == 3
    if db.url.startswith("postgresql"):
        db.execute("TRUNCATE usage_records")
    else:
        db.execute("DELETE FROM usage_records")
    assert rolled_up(db.sessions) == {}


def test_the_migration_sums_the_records_already_there_and_its_downgrade_takes_the_triggers(database_url):
    upgrade(database_url, "0038_application_origin_index")
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    midnight = _midnight()
    try:
        with transaction(factory) as session:
            session.add_all([orm_record("p", midnight - timedelta(minutes=i * 7), "m", ("k", None)[i % 2], i, 1,
                                        f"r{i}") for i in range(400)])  # fmt: skip
        upgrade(database_url)
        before = rolled_up(factory)
        assert before == summed(factory) and sum(n for n, *_ in before.values()) == 400
        command.downgrade(alembic_config(database_url), "0038_application_origin_index")
        assert "usage_daily" not in inspect(engine).get_table_names()
        with transaction(factory) as session:  # no trigger left that writes to a table gone
            session.add(orm_record("p", midnight, "m", None, 1, 1, "after"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM usage_records")).scalar_one() == 401
    finally:
        engine.dispose()


def test_the_roll_up_days_are_utc_days_whatever_the_sessions_time_zone(db):
    """PostgreSQL: the trigger takes the day of created_at in UTC, not in the session's time zone."""
    if not db.url.startswith("postgresql"):
        pytest.skip("SQLite stores UTC times without a zone")
    project = db.project(None)
    when = _midnight() - timedelta(days=1, minutes=30)  # 23:30 UTC: the next day east of UTC
    with transaction(db.sessions) as session:
        session.execute(text("SET LOCAL TIME ZONE 'Europe/Berlin'"))
        session.add(orm_record(project, when, "m", None, 1, 1, "tz"))
    assert list(rolled_up(db.sessions)) == [(project, when.date(), "m", "")]


async def test_gateway_processes_flushing_at_once_into_the_same_days_add_up(db):
    """Several processes' flushes update the same roll-up rows at the same moment: each takes their locks
    in key order (PostgreSQL), so none deadlocks (in random order, this deadlocked every time), and none
    loses another's sums."""
    projects = [db.project(None) for _ in range(4)]
    procs = [db.proc() for _ in range(3)]
    writers = [UsageWriter(proc.factory, proc.meter.quota, max_rows=1000) for proc in procs]
    rng = random.Random(3)
    now = datetime.now(UTC).timestamp()
    try:
        for _ in range(8):
            for writer in writers:
                for _ in range(2000):  # every process's batch touches every row, in its own random order
                    writer.record(entry(rng.choice(projects), model=f"m{rng.randrange(100)}", created_at=now))
            assert await asyncio.gather(*(writer.flush() for writer in writers)) == [2000] * 3
    finally:
        for writer in writers:
            await writer.aclose()
    after = rolled_up(db.sessions)
    assert after == summed(db.sessions)
    assert sum(n for n, *_ in after.values()) == 8 * 3 * 2000
