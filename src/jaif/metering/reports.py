"""Usage over time from the ledger: tokens per project and day (UTC), for the portal's usage charts and CSV.

Days are UTC calendar days of ``usage_records.created_at``; every record counts (failed requests carry
the tokens they were charged). Both reports read ``usage_daily``, the records summed per day, project,
model and key by the database's triggers (metering/models.py), so they work in whole UTC days. Only
projects ``actor`` may see are reported (access/visibility.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.metering.models import UsageDaily


def utc_day(session: Session, column):
    """A SQL expression for the UTC calendar day of a timestamp column, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def tokens_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], first: date
) -> dict[str, dict[date, int]]:
    """{project id: {day: tokens}} for the UTC days from ``first`` on that have usage, from the daily
    roll-up: one range of its primary key per project."""
    if not project_ids:
        return {}
    query = (
        select(UsageDaily.project_id, UsageDaily.day, func.sum(UsageDaily.total_tokens))
        .where(UsageDaily.project_id.in_(project_ids), project_visible(actor, UsageDaily.project_id),
               UsageDaily.day >= first)
        .group_by(UsageDaily.project_id, UsageDaily.day)
    )
    found: dict[str, dict[date, int]] = {}
    for project_id, on, total in session.execute(query):
        found.setdefault(project_id, {})[as_date(on)] = int(total)
    return found


CSV_COLUMNS = ("day", "project", "model", "key", "requests", "prompt_tokens", "completion_tokens", "total_tokens")
_TOTALS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
BREAKDOWN_COLUMNS = {
    "day": CSV_COLUMNS,
    "model": ("project", "model", *_TOTALS),
    "key": ("project", "key", *_TOTALS),
}


def _key_names(session: Session, key_ids: set[str]) -> dict[str, str]:
    """Each key's name and prefix ("name (jaif-abc…)"): the ledger keeps only its id."""
    from jaif.access.models import ApiKey

    if not key_ids:
        return {}
    return {k.id: f"{k.name} ({k.prefix}…)" if k.name else f"{k.prefix}…"
            for k in session.scalars(select(ApiKey).where(ApiKey.id.in_(key_ids)))}


def usage_breakdown(
    *, session: Session, actor: Actor, projects: list[Project], first: date, by: str = "day"
) -> tuple[tuple[str, ...], list[tuple]]:
    """(columns, rows) of the usage in the UTC days from ``first`` on of the ``projects`` ``actor`` may see,
    sorted: per day, project, model and API key (``by="day"``), per project and model (``"model"``) or per
    project and key (``"key"``; its name and prefix, "(deleted key)" for one gone, "" for requests without
    a key)."""
    columns = BREAKDOWN_COLUMNS[by]
    if not projects:
        return columns, []
    names = {p.id: p.name for p in projects}
    by_group: dict[str, list[Any]] = {
        "day": [UsageDaily.day, UsageDaily.project_id, UsageDaily.model, UsageDaily.api_key_id],
        "model": [UsageDaily.project_id, UsageDaily.model],
        "key": [UsageDaily.project_id, UsageDaily.api_key_id],
    }
    groups = by_group[by]
    query = (
        select(*groups, *(func.sum(getattr(UsageDaily, c)) for c in _TOTALS))
        .where(UsageDaily.project_id.in_(list(names)), project_visible(actor, UsageDaily.project_id),
               UsageDaily.day >= first)
        .group_by(*groups)
    )
    found = [tuple(row) for row in session.execute(query)]
    project_at, key_at = (1, 3) if by == "day" else (0, 1 if by == "key" else None)
    keys = _key_names(session, {row[key_at] for row in found if row[key_at]}) if key_at is not None else {}
    rows = []
    for row in found:
        head = list(row[: len(groups)])
        if by == "day":
            head[0] = as_date(head[0]).isoformat()
        head[project_at] = names[head[project_at]]
        if key_at is not None:  # "" in the roll-up: no key
            head[key_at] = keys.get(head[key_at], "(deleted key)") if head[key_at] else ""
        rows.append((*head, *(int(n) for n in row[len(groups):])))
    return columns, sorted(rows)
