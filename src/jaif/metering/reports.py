"""Usage over time from the ledger: tokens per project and day (UTC), for the portal's usage charts.

Days are UTC calendar days of ``usage_records.created_at``; every record counts (failed requests carry
the tokens they were charged). Only projects ``actor`` may see are reported (access/visibility.py).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.metering.models import UsageRecord


def utc_day(session: Session, column):
    """A SQL expression for the UTC calendar day of a timestamp column, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def per_project_day(
    *, session: Session, actor: Actor, project_ids: list[str], project, when, value, since: datetime,
    until: datetime | None = None,
) -> dict[str, dict[date, float]]:
    """{project id: {day: sum of ``value``}} of the rows whose ``when`` is in [since, until), per UTC day of
    ``when``: one GROUP BY for the usage charts (tokens here, GPU-hours in compute/daily.py)."""
    if not project_ids:
        return {}
    day = utc_day(session, when)
    query = (
        select(project, day, func.coalesce(func.sum(value), 0))
        .where(project.in_(project_ids), project_visible(actor, project), when >= since)
        .group_by(project, day)
    )
    if until is not None:
        query = query.where(when < until)
    found: dict[str, dict[date, float]] = {}
    for project_id, on, total in session.execute(query):
        found.setdefault(project_id, {})[as_date(on)] = total
    return found


def tokens_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> dict[str, dict[date, int]]:
    """{project id: {day: tokens}} for the days with usage in [since, until)."""
    found = per_project_day(session=session, actor=actor, project_ids=project_ids, project=UsageRecord.project_id,
                            when=UsageRecord.created_at, value=UsageRecord.total_tokens, since=since, until=until)
    return {pid: {d: int(n) for d, n in days.items()} for pid, days in found.items()}
