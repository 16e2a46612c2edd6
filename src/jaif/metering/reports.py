"""Usage over time from the ledger: tokens per project and day (UTC), for the portal's usage charts.

Days are UTC calendar days of ``usage_records.created_at``; every record counts (failed requests carry
the tokens they were charged). Only projects ``actor`` may see are reported (access/visibility.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from jaif.access.models import Project
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


def per_project_day_ranged(
    *, session: Session, actor: Actor, project_ids: list[str], project, when, value, since: datetime,
    until: datetime | None = None,
) -> dict[str, dict[date, float]]:
    """``per_project_day`` in PostgreSQL for a table with an index on (project, when) that carries ``value``:
    one sum per project and day, each over its own range of that index, so that no row's day is computed
    (the GROUP BY above spends most of its time on that). Days run from the UTC day of ``since`` to that of
    ``until`` (default: now); rows after the end of that last day are not counted."""
    if not project_ids:
        return {}
    since = since.astimezone(UTC)
    end = (until or datetime.now(UTC)).astimezone(UTC)
    midnight = datetime.combine(since.date(), time(), tzinfo=UTC)
    count = max(0, (end.date() - since.date()).days + 1)
    n = func.generate_series(0, count - 1).table_valued("n").render_derived()
    low = func.greatest(midnight + func.make_interval(0, 0, 0, 0, n.c.n * 24), since)
    high = midnight + func.make_interval(0, 0, 0, 0, (n.c.n + 1) * 24)
    total = select(func.sum(value)).where(project == Project.id, when >= low, when < high)
    if until is not None:
        total = total.where(when < until)
    query = (
        select(Project.id, n.c.n, total.scalar_subquery())
        .join_from(Project, n, true())  # every project with every day
        .where(Project.id.in_(project_ids), project_visible(actor, Project.id))
    )
    found: dict[str, dict[date, float]] = {}
    for project_id, offset, amount in session.execute(query):
        if amount is not None:
            found.setdefault(project_id, {})[since.date() + timedelta(days=offset)] = amount
    return found


def tokens_per_day(
    *, session: Session, actor: Actor, project_ids: list[str], since: datetime, until: datetime | None = None
) -> dict[str, dict[date, int]]:
    """{project id: {day: tokens}} for the days with usage in [since, until). In PostgreSQL each day is a
    range of ix_usage_project_created (which carries total_tokens), summed from the index alone."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    report = per_project_day_ranged if postgresql else per_project_day
    found = report(session=session, actor=actor, project_ids=project_ids, project=UsageRecord.project_id,
                   when=UsageRecord.created_at, value=UsageRecord.total_tokens, since=since, until=until)
    return {pid: {d: int(n) for d, n in days.items()} for pid, days in found.items()}


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
    *, session: Session, actor: Actor, projects: list[Project], since: datetime, until: datetime | None = None,
    by: str = "day",
) -> tuple[tuple[str, ...], list[tuple]]:
    """(columns, rows) of the usage in [since, until) of the ``projects`` ``actor`` may see, sorted: per UTC
    day, project, model and API key (``by="day"``), per project and model (``"model"``) or per project and
    key (``"key"``; its name and prefix, "(deleted key)" for one gone, "" for requests without a key)."""
    columns = BREAKDOWN_COLUMNS[by]
    if not projects:
        return columns, []
    names = {p.id: p.name for p in projects}
    day = utc_day(session, UsageRecord.created_at)
    groups = {"day": [day, UsageRecord.project_id, UsageRecord.model, UsageRecord.api_key_id],
              "model": [UsageRecord.project_id, UsageRecord.model],
              "key": [UsageRecord.project_id, UsageRecord.api_key_id]}[by]
    query = (
        select(*groups, func.count(), func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
               func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
               func.coalesce(func.sum(UsageRecord.total_tokens), 0))
        .where(UsageRecord.project_id.in_(list(names)), project_visible(actor, UsageRecord.project_id),
               UsageRecord.created_at >= since)
        .group_by(*groups)
    )
    if until is not None:
        query = query.where(UsageRecord.created_at < until)
    found = [tuple(row) for row in session.execute(query)]
    project_at, key_at = (1, 3) if by == "day" else (0, 1 if by == "key" else None)
    keys = _key_names(session, {row[key_at] for row in found if row[key_at]}) if key_at is not None else {}
    rows = []
    for row in found:
        head = list(row[: len(groups)])
        if by == "day":
            head[0] = as_date(head[0]).isoformat()
        head[project_at] = names[head[project_at]]
        if key_at is not None:
            head[key_at] = keys.get(head[key_at], "(deleted key)") if head[key_at] else ""
        rows.append((*head, *(int(n) for n in row[len(groups):])))
    return columns, sorted(rows)

