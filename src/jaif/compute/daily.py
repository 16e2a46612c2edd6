"""GPU-hours per project and day (UTC), from the imported accounting records, for the portal's usage charts.

A job counts on the UTC day it ended, with all its GPU-hours, as the accounting import charged it to the
project's allocations (accounting.py). Only projects ``actor`` may see are reported.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.compute.models import JobRecord
from jaif.metering.reports import as_date, utc_day


def gpu_hours_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> dict[str, dict[date, float]]:
    """{project id: {day: GPU-hours}} for the days on which jobs of the project ended, in [since, until)."""
    if not project_ids:
        return {}
    day = utc_day(session, JobRecord.ended_at)
    query = (
        select(JobRecord.project_id, day, func.coalesce(func.sum(JobRecord.gpu_hours), 0.0))
        .where(
            JobRecord.project_id.in_(project_ids),
            project_visible(actor, JobRecord.project_id),
            JobRecord.ended_at >= since,
        )
        .group_by(JobRecord.project_id, day)
    )
    if until is not None:
        query = query.where(JobRecord.ended_at < until)
    found: dict[str, dict[date, float]] = {}
    for project_id, when, hours in session.execute(query):
        found.setdefault(project_id, {})[as_date(when)] = float(hours)
    return found
