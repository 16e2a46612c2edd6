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


def tokens_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> dict[str, dict[date, int]]:
    """{project id: {day: tokens}} for the days with usage in [since, until)."""
    if not project_ids:
        return {}
    day = utc_day(session, UsageRecord.created_at)
    query = (
        select(UsageRecord.project_id, day, func.coalesce(func.sum(UsageRecord.total_tokens), 0))
        .where(
            UsageRecord.project_id.in_(project_ids),
            project_visible(actor, UsageRecord.project_id),
            UsageRecord.created_at >= since,
        )
        .group_by(UsageRecord.project_id, day)
    )
    if until is not None:
        query = query.where(UsageRecord.created_at < until)
    found: dict[str, dict[date, int]] = {}
    for project_id, when, tokens in session.execute(query):
        found.setdefault(project_id, {})[as_date(when)] = int(tokens)
    return found
