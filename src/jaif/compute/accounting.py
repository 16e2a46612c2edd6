"""Accounting import: finished jobs from the scheduler (Slurm: sacct) into job records, charged once.

- Idempotent by job id: a record exists once per (cluster, job id) (unique); re-running charges nothing twice.
- Resumable: records are written in batches (``compute.accounting_batch``), each batch in one
  transaction together with its charges, so a killed import leaves whole batches and the next run picks
  up the rest. It looks back from the newest record it holds (less an overlap), or 30 days at first.
- Per job: GPU-hours as the site counts them, energy (Slurm's ConsumedEnergy where recorded, else the
  partition's power model, marked), CO2 from the grid intensity; the GPU-hours are charged to the
  project's allocations through the allocations service.
- Jobs of accounts that are not a project's (root, other groups' accounts) are left alone.
- Few round trips per batch: one query for the recorded job ids, one to read and lock the allocations,
  one to write their balances (allocations/gpu_hours.py), the records as one COPY (PostgreSQL) or one
  executemany (SQLite).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from itertools import islice
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.allocations import service as allocations
from jaif.compute.backend import Compute
from jaif.compute.energy import co2_kg, job_energy
from jaif.compute.models import Job, JobRecord
from jaif.compute.naming import project_account
from jaif.compute.scheduler import AccountingEntry
from jaif.compute.schemas import ImportResult
from jaif.compute.site import Partition, from_profile, profile
from jaif.config import ComputeSettings, PartitionProfile
from jaif.db.base import UTCDateTime, sqlite_time, utcnow

OVERLAP = timedelta(hours=6)  # jobs can reach sacct a little after jobs that ended later
FIRST_LOOKBACK = timedelta(days=30)

SessionFactory = Callable[[], AbstractContextManager[Session]]


def _batches(items: list[AccountingEntry], size: int) -> Iterator[list[AccountingEntry]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _fallback(settings: ComputeSettings, name: str) -> Partition:
    """A partition the scheduler does not report (any more): the profile's entry, else the defaults."""
    return from_profile(profile(settings).get(name) or PartitionProfile(name=name))


def _ids(n: int) -> list[str]:
    """``n`` record ids: time-ordered (the primary key index grows at its end) and random after that."""
    stamp = f"{time.time_ns() // 1000:014x}"
    noise = os.urandom(9 * n).hex()
    return [stamp + noise[18 * i:18 * i + 18] for i in range(n)]


def _record(entry: AccountingEntry, project_id: str, part: Partition, grid: float, now: datetime) -> dict:
    gpu_hours = part.gpu_hours(nodes=entry.nodes, gpus=entry.gpus, elapsed_s=entry.elapsed_s)
    kwh, source = job_energy(part, nodes=entry.nodes, gpus=entry.gpus, elapsed_s=entry.elapsed_s,
                             consumed_j=entry.consumed_energy_j)
    return {
        "id": "", "cluster": entry.cluster, "job_id": entry.job_id, "project_id": project_id,
        "account": entry.account, "user": entry.user[:64], "name": entry.name[:200], "partition": entry.partition,
        "state": entry.state.value, "submitted_at": entry.submitted_at, "started_at": entry.started_at,
        "ended_at": entry.ended_at, "elapsed_s": entry.elapsed_s, "nodes": entry.nodes, "gpus": entry.gpus,
        "gpu_hours": gpu_hours, "energy_kwh": kwh, "energy_source": source, "co2_kg": co2_kg(kwh, grid),
        "allocation_id": None, "imported_at": now,
    }


def import_accounting(
    *, session_factory: SessionFactory, compute: Compute, since: datetime | None = None
) -> ImportResult:
    settings = compute.settings.compute
    cluster = compute.scheduler.cluster
    with session_factory() as session:
        if since is None:
            last = session.scalar(select(func.max(JobRecord.ended_at)).where(JobRecord.cluster == cluster))
            since = last - OVERLAP if last is not None else utcnow() - FIRST_LOOKBACK
        projects = {project_account(name): pid for pid, name in session.execute(select(Project.id, Project.name))}
    entries = sorted(compute.scheduler.accounting(since=since), key=lambda e: (e.ended_at, e.job_id))
    partitions = dict(compute.partitions())
    result = ImportResult()
    for batch in _batches(entries, settings.accounting_batch):
        result.seen += len(batch)
        with session_factory() as session:
            _defer_checkpoints(session, defer=True)
            try:
                with session.begin_nested():
                    part = _import_batch(session, batch, projects, partitions, settings, exact=False)
            except IntegrityError:  # a job id recorded with another end time (requeued): look up each id
                part = _import_batch(session, batch, projects, partitions, settings, exact=True)
        for key in ("imported", "already", "foreign", "gpu_hours", "energy_kwh", "uncharged_gpu_hours"):
            setattr(result, key, getattr(result, key) + getattr(part, key))
    if entries:
        with session_factory() as session:
            _defer_checkpoints(session, defer=False)
    return result


def _defer_checkpoints(session: Session, *, defer: bool) -> None:
    """SQLite: write the import's batches to the write-ahead log and copy them into the database once at
    the end, not every 4 MB (each copy waits for the disk: half the time of a large import). A killed
    import leaves the log for the next connection to copy; nothing is lost."""
    if session.get_bind().dialect.name != "sqlite":
        return
    if defer:
        session.execute(text("PRAGMA wal_autocheckpoint=0"))
    else:
        session.execute(text("PRAGMA wal_autocheckpoint=1000"))  # SQLite's default


def _recorded(session: Session, batch: list[AccountingEntry], *, exact: bool) -> set[str]:
    """Job ids of the batch that have a record: those that ended in the batch's window (the batch is
    sorted by end time), or with ``exact`` each id looked up."""
    cluster = batch[0].cluster
    if not exact:
        return set(session.scalars(select(JobRecord.job_id).where(
            JobRecord.cluster == cluster, JobRecord.ended_at >= batch[0].ended_at,
            JobRecord.ended_at <= batch[-1].ended_at,
        )))
    ids = [e.job_id for e in batch]
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        found.update(session.scalars(
            select(JobRecord.job_id).where(JobRecord.cluster == cluster, JobRecord.job_id.in_(ids[i:i + 500]))
        ))
    return found


def _import_batch(
    session: Session,
    batch: list[AccountingEntry],
    projects: dict[str, str],
    partitions: dict[str, Partition],
    settings: ComputeSettings,
    *,
    exact: bool,
) -> ImportResult:
    cluster = batch[0].cluster
    result = ImportResult()
    have = _recorded(session, batch, exact=exact)
    now = utcnow()
    rows = []
    for entry in batch:
        if entry.job_id in have:
            result.already += 1
            continue
        project_id = projects.get(entry.account)
        if project_id is None:
            result.foreign += 1
            continue
        if entry.partition not in partitions:
            partitions[entry.partition] = _fallback(settings, entry.partition)
        rows.append(_record(entry, project_id, partitions[entry.partition], settings.grid_intensity_g_per_kwh, now))
        have.add(entry.job_id)
    if not rows:
        return result
    for row, record_id in zip(rows, _ids(len(rows)), strict=True):
        row["id"] = record_id
    charges = [allocations.GpuCharge(r["project_id"], r["partition"], r["gpu_hours"], r["ended_at"]) for r in rows]
    for row, allocation_id in zip(rows, allocations.charge_gpu_hours(session=session, charges=charges), strict=True):
        row["allocation_id"] = allocation_id
        if allocation_id is None:
            result.uncharged_gpu_hours += row["gpu_hours"]
    _insert(session, rows)
    waiting = set(session.scalars(select(Job.job_id).where(Job.cluster == cluster, Job.accounted_at.is_(None))))
    submitted = [r["job_id"] for r in rows if r["job_id"] in waiting]  # jobs jaif submitted, now charged
    if submitted:
        session.execute(
            update(Job).where(Job.cluster == cluster, Job.job_id.in_(submitted)).values(accounted_at=now),
            execution_options={"synchronize_session": False},
        )
    result.imported += len(rows)
    result.gpu_hours += sum(r["gpu_hours"] for r in rows)
    result.energy_kwh += sum(r["energy_kwh"] for r in rows)
    return result


_COLUMNS = [c.name for c in JobRecord.__table__.columns]
_TIMES = [i for i, c in enumerate(JobRecord.__table__.columns) if isinstance(c.type, UTCDateTime)]


def _insert(session: Session, rows: list[dict]) -> None:
    """The records in the fastest way the database offers: PostgreSQL's binary COPY, SQLite's own
    executemany with the times converted once, else a Core executemany. A duplicate raises IntegrityError."""
    connection = session.connection()
    dialect = connection.dialect
    table = cast(Table, JobRecord.__table__)
    if (dialect.name, dialect.driver) not in (("postgresql", "psycopg"), ("sqlite", "pysqlite")):
        connection.execute(insert(table), rows)
        return
    tuples = list(map(itemgetter(*_COLUMNS), rows))
    names = ", ".join(f'"{name}"' for name in _COLUMNS)
    if dialect.name == "sqlite":
        for n, row in enumerate(tuples):
            values = list(row)
            for i in _TIMES:
                values[i] = sqlite_time(values[i])
            tuples[n] = tuple(values)
        marks = ", ".join("?" * len(_COLUMNS))
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", tuples)
        return
    raw: Any = connection.connection.driver_connection  # psycopg's connection: COPY is its own API
    types: dict[str, int] = dict(connection.exec_driver_sql(  # COPY's binary format wants each column's exact type
        "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %(t)s::regclass AND attnum > 0 "
        "AND NOT attisdropped", {"t": table.name}).all())
    try:
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[name] for name in _COLUMNS])
            for values in tuples:
                copy.write_row(values)
    except dialect.loaded_dbapi.IntegrityError as exc:  # as the Core path raises it: the caller looks up each id then
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
