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
from jaif.metering.reports import as_date, utc_day

PerDay = dict[str, dict[date, float]]


def totals_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> tuple[PerDay, PerDay, PerDay]:
    """({project id: {day: GPU-hours}}, … kWh, … kg CO2) of the jobs that ended in [since, until), in one
    GROUP BY: the usage page's three charts."""
    hours: PerDay = {}
    kwh: PerDay = {}
    co2: PerDay = {}
    if not project_ids:
        return hours, kwh, co2
    day = utc_day(session, JobRecord.ended_at)
    query = (
        select(JobRecord.project_id, day, func.coalesce(func.sum(JobRecord.gpu_hours), 0.0),
               func.coalesce(func.sum(JobRecord.energy_kwh), 0.0), func.coalesce(func.sum(JobRecord.co2_kg), 0.0))
        .where(JobRecord.project_id.in_(project_ids), project_visible(actor, JobRecord.project_id),
               JobRecord.ended_at >= since)
        .group_by(JobRecord.project_id, day)
    )
    if until is not None:
        query = query.where(JobRecord.ended_at < until)
    for pid, on, g, e, c in session.execute(query):
        on = as_date(on)
        hours.setdefault(pid, {})[on] = float(g)
        kwh.setdefault(pid, {})[on] = float(e)
        co2.setdefault(pid, {})[on] = float(c)
    return hours, kwh, co2


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
