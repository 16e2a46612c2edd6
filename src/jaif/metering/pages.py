"""Usage over time, per project: inference tokens per day (the gateway's usage records), and GPU-hours,
energy (kWh) and CO2 (kg) per day (the compute accounting's job records), as server-drawn SVG charts with
the figures in a table too; and the same as CSV (``/usage.csv``), per day, model and key, per model, per
key, or the jobs' energy per day.

Without ``project`` the page shows the user's own projects; with it, that one project, which must be
one the user may see (operators: any), else 404.
"""

from __future__ import annotations

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
from jaif.errors import InvalidRequest
from jaif.identity.deps import PageUser
from jaif.metering import charts
from jaif.metering import reports as metering_reports
from jaif.web.deps import DB
from jaif.web.display import render
from jaif.web.download import csv_response

router = APIRouter(include_in_schema=False)
PERIODS = (7, 30, 90)
BREAKDOWNS = ("day", "model", "key", "energy")  # what /usage.csv?by= may be


@dataclass
class Panel:
    project: Project
    tokens: charts.Series
    gpu_hours: charts.Series
    energy: charts.Series  # kWh
    co2: charts.Series  # kg
    tokens_chart: Markup
    gpu_chart: Markup | None  # drawn only when jobs ended in the period
    energy_chart: Markup | None
    co2_chart: Markup | None
    rows: Markup  # the table's rows: day, tokens, GPU-hours, kWh, kg CO2, newest first, the days with any


def _projects(session: Session, actor: Actor, project_id: str) -> list[Project]:
    if project_id:
        return [directory.get_project(session=session, actor=actor, project_id=project_id, members=False)]
    return directory.member_projects(session=session, actor=actor)


def _rows(tokens: charts.Series, gpu_hours: charts.Series, energy: charts.Series, co2: charts.Series) -> Markup:
    """The table's rows as HTML (dates and figures: nothing to escape), drawn here rather than by the
    template, which would escape each of up to 5 x 90 cells."""
    days = reversed(list(zip(tokens.days, tokens.values, gpu_hours.values, energy.values, co2.values, strict=True)))
    return Markup("\n".join(
        f"<tr><td>{day.isoformat()}</td><td>{charts.shown(t, 'tokens')}</td><td>{charts.shown(g, 'GPU-hours')}</td>"
        f"<td>{charts.shown(e, 'kWh')}</td><td>{charts.shown(c, 'kg')}</td></tr>"
        for day, t, g, e, c in days if t or g or e or c))


def _chart(series: charts.Series, what: str, project: Project, chart_id: str) -> Markup | None:
    if not series.total:
        return None
    title = f"{what} per day, project {project.name}"
    return charts.bar_chart(series, title=title, chart_id=f"{chart_id}-{project.id}")


def panels(session: Session, actor: Actor, projects: list[Project], *, first: date, last: date) -> list[Panel]:
    since = datetime.combine(first, time(), tzinfo=UTC)
    ids = [p.id for p in projects]
    tokens = metering_reports.tokens_per_day(session=session, actor=actor, project_ids=ids, first=first)
    hours, kwh, co2 = compute_daily.totals_per_day(session=session, actor=actor, project_ids=ids, since=since)
    found = []
    for p in projects:
        t = charts.daily(tokens.get(p.id, {}), first=first, last=last, unit="tokens")
        g = charts.daily(hours.get(p.id, {}), first=first, last=last, unit="GPU-hours")
        e = charts.daily(kwh.get(p.id, {}), first=first, last=last, unit="kWh")
        c = charts.daily(co2.get(p.id, {}), first=first, last=last, unit="kg CO2")
        found.append(Panel(
            project=p, tokens=t, gpu_hours=g, energy=e, co2=c, rows=_rows(t, g, e, c),
            tokens_chart=charts.bar_chart(t, title=f"Tokens per day, project {p.name}", chart_id=f"tokens-{p.id}"),
            gpu_chart=_chart(g, "GPU-hours", p, "gpu"), energy_chart=_chart(e, "Energy (kWh)", p, "energy"),
            co2_chart=_chart(c, "CO2 (kg)", p, "co2"),
        ))
    return found


def _period(days: int) -> tuple[int, date, datetime]:
    if days not in PERIODS:  # never a silent default for what the user asked
        raise InvalidRequest(f"days must be one of {', '.join(map(str, PERIODS))}, not {days}.", param="days")
    last = datetime.now(UTC).date()
    return days, last, datetime.combine(last - timedelta(days=days - 1), time(), tzinfo=UTC)


@router.get("/usage.csv")
def usage_csv(
    session: DB, actor: PageUser, project: Annotated[str, Query(max_length=32)] = "", days: int = 30,
    by: Annotated[str, Query(max_length=10)] = "day",
) -> Response:
    """The usage page's period as CSV: tokens per day, project, model and API key (``by=day``); per project
    and model (``model``); per project and key (``key``); or the jobs' GPU-hours, kWh and kg CO2 per day and
    project (``energy``)."""
    if by not in BREAKDOWNS:
        raise InvalidRequest(f"by must be one of {', '.join(BREAKDOWNS)}", param="by")
    days, last, since = _period(days)
    projects = _projects(session, actor, project)
    columns: tuple[str, ...]
    if by == "energy":
        columns, rows = compute_daily.ENERGY_CSV_COLUMNS, compute_daily.energy_rows(
            session=session, actor=actor, projects=projects, since=since)
    else:
        columns, rows = metering_reports.usage_breakdown(session=session, actor=actor, projects=projects,
                                                         first=since.date(), by=by)
    suffix = "" if by == "day" else f"-by-{by}"
    return csv_response(f"usage{suffix}-{project or 'my-projects'}-{last.isoformat()}-{days}d.csv", columns, rows)


@router.get("/usage")
def usage(
    request: Request, session: DB, actor: PageUser,
    project: Annotated[str, Query(max_length=32)] = "", days: int = 30,
) -> Response:
    days, last, since = _period(days)
    first = since.date()
    chosen = _projects(session, actor, project)
    grid = request.app.state.settings.compute.grid_intensity_g_per_kwh
    return render(request, "metering/usage.html", section="usage", panels=panels(session, actor, chosen, first=first,
                  last=last), days=days, periods=PERIODS, project=project, first=first, last=last, grid=grid)
