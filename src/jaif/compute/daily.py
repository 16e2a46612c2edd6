"""GPU-hours per project and day (UTC), from the imported accounting records, for the portal's usage charts.

A job counts on the UTC day it ended, with all its GPU-hours, as the accounting import charged it to the
project's allocations (accounting.py). Only projects ``actor`` may see are reported.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from jaif.access.schemas import Actor
from jaif.compute.models import JobRecord
from jaif.metering.reports import per_project_day


def gpu_hours_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> dict[str, dict[date, float]]:
    """{project id: {day: GPU-hours}} for the days on which jobs of the project ended, in [since, until)."""
    found = per_project_day(session=session, actor=actor, project_ids=project_ids, project=JobRecord.project_id,
                            when=JobRecord.ended_at, value=JobRecord.gpu_hours, since=since, until=until)
    return {pid: {d: float(h) for d, h in days.items()} for pid, days in found.items()}
