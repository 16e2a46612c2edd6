"""Usage over time, per project: inference tokens per day (the gateway's usage records) and GPU-hours per
day (the compute accounting's job records), as server-drawn SVG charts with the figures in a table too.

Without ``project`` the page shows the user's own projects; with it, that one project, which must be
one the user may see (operators: any), else 404.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import Response

from jaif.access import directory
from jaif.access.models import Project
from jaif.access.schemas import Actor
from jaif.compute import daily as compute_daily
from jaif.identity.deps import PageUser
from jaif.metering import charts
from jaif.metering import reports as metering_reports
from jaif.web.deps import DB
from jaif.web.display import number, render

router = APIRouter(include_in_schema=False)
PERIODS = (7, 30, 90)


@dataclass
class Panel:
    project: Project
    tokens: charts.Series
    gpu_hours: charts.Series
    tokens_chart: Markup
    gpu_chart: Markup | None  # drawn only when jobs ended in the period
    rows: Markup  # the table's rows: day, tokens, GPU-hours, newest first, the days with either


def _projects(session: Session, actor: Actor, project_id: str) -> list[Project]:
    if project_id:
        return [directory.get_project(session=session, actor=actor, project_id=project_id, members=False)]
    return directory.member_projects(session=session, actor=actor)


def _rows(tokens: charts.Series, gpu_hours: charts.Series) -> Markup:
    """The table's rows as HTML (dates and figures: nothing to escape), drawn here rather than by the
    template, which would escape each of up to 3 x 90 cells."""
    days = reversed(list(zip(tokens.days, tokens.values, gpu_hours.values, strict=True)))
    return Markup("\n".join(f"<tr><td>{day.isoformat()}</td><td>{number(t)}</td><td>{number(g, 2)}</td></tr>"
                             for day, t, g in days if t or g))


def panels(session: Session, actor: Actor, projects: list[Project], *, first: date, last: date) -> list[Panel]:
    since = datetime.combine(first, time(), tzinfo=UTC)
    ids = [p.id for p in projects]
    tokens = metering_reports.tokens_per_day(session=session, actor=actor, project_ids=ids, since=since)
    hours = compute_daily.gpu_hours_per_day(session=session, actor=actor, project_ids=ids, since=since)
    found = []
    for p in projects:
        t = charts.daily(tokens.get(p.id, {}), first=first, last=last, unit="tokens")
        g = charts.daily(hours.get(p.id, {}), first=first, last=last, unit="GPU-hours")
        found.append(Panel(
            project=p, tokens=t, gpu_hours=g, rows=_rows(t, g),
            tokens_chart=charts.bar_chart(t, title=f"Tokens per day, project {p.name}", chart_id=f"tokens-{p.id}"),
            gpu_chart=charts.bar_chart(g, title=f"GPU-hours per day, project {p.name}", chart_id=f"gpu-{p.id}")
            if g.total else None,
        ))
    return found


def _cell(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @ first: a key's name is the user's) is
    written with a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/usage.csv")
def usage_csv(
    session: DB, actor: PageUser, project: Annotated[str, Query(max_length=32)] = "", days: int = 30,
) -> Response:
    """The usage page's period as CSV: tokens per day, project, model and API key."""
    days = days if days in PERIODS else 30
    last = datetime.now(UTC).date()
    since = datetime.combine(last - timedelta(days=days - 1), time(), tzinfo=UTC)
    rows = metering_reports.usage_rows(session=session, actor=actor, projects=_projects(session, actor, project),
                                       since=since)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(metering_reports.CSV_COLUMNS)
    writer.writerows([tuple(_cell(v) for v in row) for row in rows])
    name = f"usage-{project or 'my-projects'}-{last.isoformat()}-{days}d.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


@router.get("/usage")
def usage(
    request: Request, session: DB, actor: PageUser,
    project: Annotated[str, Query(max_length=32)] = "", days: int = 30,
) -> Response:
    days = days if days in PERIODS else 30
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    chosen = _projects(session, actor, project)
    return render(request, "metering/usage.html", section="usage", panels=panels(session, actor, chosen, first=first,
                  last=last), days=days, periods=PERIODS, project=project, first=first, last=last)
