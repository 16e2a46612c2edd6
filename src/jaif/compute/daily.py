"""GPU-hours, energy (kWh) and CO2 (kg) per project and day (UTC), from the imported accounting records, for
the portal's usage charts.

A job counts on the UTC day it ended, with all its GPU-hours, energy and CO2, as the accounting import
recorded them (accounting.py: Slurm's measured energy where the site records it, else the partition's
power model; CO2 from ``compute.grid_intensity_g_per_kwh`` at import). Only projects ``actor`` may see are
reported.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.compute.models import JobRecord
from jaif.metering.reports import as_date, per_project_day, utc_day

PerDay = dict[str, dict[date, float]]


def _per_day(session: Session, actor: Actor, project_ids: list[str], value, since: datetime,
             until: datetime | None) -> PerDay:
    found = per_project_day(session=session, actor=actor, project_ids=project_ids, project=JobRecord.project_id,
                            when=JobRecord.ended_at, value=value, since=since, until=until)
    return {pid: {d: float(v) for d, v in days.items()} for pid, days in found.items()}


def gpu_hours_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> PerDay:
    """{project id: {day: GPU-hours}} for the days on which jobs of the project ended, in [since, until)."""
    return _per_day(session, actor, project_ids, JobRecord.gpu_hours, since, until)


def energy_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> tuple[PerDay, PerDay]:
    """({project id: {day: kWh}}, {project id: {day: kg CO2}}) of the jobs that ended in [since, until)."""
    kwh = _per_day(session, actor, project_ids, JobRecord.energy_kwh, since, until)
    co2 = _per_day(session, actor, project_ids, JobRecord.co2_kg, since, until)
    return kwh, co2


ENERGY_CSV_COLUMNS = ("day", "project", "jobs", "gpu_hours", "energy_kwh", "co2_kg")


def energy_rows(
    *, session: Session, actor: Actor, projects: list[Project], since: datetime, until: datetime | None = None
) -> list[tuple]:
    """The jobs that ended in [since, until) per UTC day and project, in ENERGY_CSV_COLUMNS' order, oldest
    first: the usage page's energy CSV. Only the ``projects`` ``actor`` may see."""
    if not projects:
        return []
    names = {p.id: p.name for p in projects}
    day = utc_day(session, JobRecord.ended_at)
    query = (
        select(day, JobRecord.project_id, func.count(), func.coalesce(func.sum(JobRecord.gpu_hours), 0.0),
               func.coalesce(func.sum(JobRecord.energy_kwh), 0.0), func.coalesce(func.sum(JobRecord.co2_kg), 0.0))
        .where(JobRecord.project_id.in_(list(names)), project_visible(actor, JobRecord.project_id),
               JobRecord.ended_at >= since)
        .group_by(day, JobRecord.project_id)
    )
    if until is not None:
        query = query.where(JobRecord.ended_at < until)
    return sorted((as_date(on).isoformat(), names[pid], int(n), float(g), float(e), float(c))
                  for on, pid, n, g, e, c in session.execute(query))
