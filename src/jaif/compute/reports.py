"""Reports: GPU-hours, energy (kWh), CO2 and tokens of a project, an organisation or a call over a
period, from the imported job records and the token ledger; as an object, lines of text or CSV."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from jaif.access.models import Organisation, Project
from jaif.access.schemas import Actor
from jaif.access.visibility import organisation_visible, project_visible
from jaif.allocations import service as allocations
from jaif.applications.models import Application, ApplicationKind
from jaif.calls import service as calls
from jaif.compute.energy import MODEL, SLURM
from jaif.compute.models import Job, JobRecord
from jaif.compute.schemas import ComputeReport, PartitionUsage, UsageTotals
from jaif.config import Settings
from jaif.db.base import utcnow
from jaif.errors import Forbidden, InvalidRequest, NotFound
from jaif.metering import service as metering


def _totals() -> tuple:
    """Jobs, GPU-hours, kWh, kg CO2, kWh measured by Slurm and kWh from the power model, summed."""
    return (
        func.count(),
        func.coalesce(func.sum(JobRecord.gpu_hours), 0.0),
        func.coalesce(func.sum(JobRecord.energy_kwh), 0.0),
        func.coalesce(func.sum(JobRecord.co2_kg), 0.0),
        func.coalesce(func.sum(case((JobRecord.energy_source == SLURM, JobRecord.energy_kwh), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((JobRecord.energy_source == MODEL, JobRecord.energy_kwh), else_=0.0)), 0.0),
    )

def _scope(
    session: Session, actor: Actor, project_name: str | None, org_name: str | None, call: str | None
) -> tuple[str, str, list[Project]]:
    given = [v for v in (project_name, org_name, call) if v is not None]
    if len(given) != 1:
        raise InvalidRequest("name one project, organisation or call to report on", param="project")
    visible = select(Project).where(project_visible(actor, Project.id))
    if project_name is not None:
        project = session.scalar(visible.where(Project.name == project_name))
        if project is None:
            raise NotFound(f"no project {project_name!r} (or you are not a member of it)", param="project")
        return "project", project.name, [project]
    if org_name is not None:
        org = session.scalar(select(Organisation).where(Organisation.name == org_name, organisation_visible(actor)))
        if org is None:
            raise NotFound(f"no organisation {org_name!r}", param="org")
        return "organisation", org.name, list(session.scalars(visible.where(Project.organisation_id == org.id)))
    found = calls.get_call(session=session, ref=call or "")
    ids = select(Application.project_id).where(Application.call_id == found.id, Application.project_id.is_not(None))
    return "call", found.name, list(session.scalars(visible.where(Project.id.in_(ids))))


def report(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    project_name: str | None = None,
    org_name: str | None = None,
    call: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ComputeReport:
    scope, name, projects = _scope(session, actor, project_name, org_name, call)
    ids = [p.id for p in projects]
    filters: list[ColumnElement[bool]] = [JobRecord.project_id.in_(ids)]
    if since is not None:
        filters.append(JobRecord.ended_at >= since)
    if until is not None:
        filters.append(JobRecord.ended_at < until)
    rows = session.execute(
        select(
            JobRecord.partition,
            *_totals(),
        )
        .where(*filters)
        .group_by(JobRecord.partition)
        .order_by(JobRecord.partition)
    ).all()
    parts = [
        PartitionUsage(partition=p, jobs=n, gpu_hours=g, energy_kwh=e, co2_kg=c, energy_measured_kwh=m,
                       energy_modelled_kwh=x)
        for p, n, g, e, c, m, x in rows
    ]
    tokens = sum(
        metering.project_usage(session=session, project=p, since=since, until=until).total_tokens for p in projects
    )
    allocated = sum(
        a.amount
        for p in projects
        for a in allocations.list_allocations(session=session, actor=actor, project_id=p.id, resource="gpu_hours")
        if a.status != "revoked"
    )
    return ComputeReport(
        scope=scope, name=name, since=since, until=until, jobs=sum(p.jobs for p in parts),
        gpu_hours=sum(p.gpu_hours for p in parts), energy_kwh=sum(p.energy_kwh for p in parts),
        co2_kg=sum(p.co2_kg for p in parts), energy_measured_kwh=sum(p.energy_measured_kwh for p in parts),
        energy_modelled_kwh=sum(p.energy_modelled_kwh for p in parts),
        grid_intensity_g_per_kwh=settings.compute.grid_intensity_g_per_kwh, tokens=tokens,
        allocated_gpu_hours=allocated, partitions=parts, projects=sorted(p.name for p in projects),
    )


def jobs_usage(
    *, session: Session, job_refs: Collection[str], since: datetime | None = None, until: datetime | None = None
) -> tuple[UsageTotals, int]:
    """What the accounting import charged for these jobs (jaif's ids, ``Job.id``) that ended in [since,
    until), and how many of them it has not charged yet (still running, or not imported yet)."""
    refs = sorted(set(job_refs))
    filters: list[ColumnElement[bool]] = [Job.id.in_(refs)]
    if since is not None:
        filters.append(JobRecord.ended_at >= since)
    if until is not None:
        filters.append(JobRecord.ended_at < until)
    n, g, e, c, m, x = session.execute(
        select(
            *_totals(),
        )
        .select_from(Job)
        .join(JobRecord, (JobRecord.cluster == Job.cluster) & (JobRecord.job_id == Job.job_id))
        .where(*filters)
    ).one()
    waiting: list[ColumnElement[bool]] = [Job.id.in_(refs), Job.accounted_at.is_(None)]
    if until is not None:
        waiting.append(Job.submitted_at < until)
    uncharged = session.scalar(select(func.count()).select_from(Job).where(*waiting)) or 0
    totals = UsageTotals(jobs=n, gpu_hours=g, energy_kwh=e, co2_kg=c, energy_measured_kwh=m, energy_modelled_kwh=x)
    return totals, uncharged


def per_call(
    *, session: Session, actor: Actor, since: datetime | None = None, until: datetime | None = None
) -> dict[str, UsageTotals]:
    """{call id: what the jobs of its projects used} for the jobs that ended in [since, until): operators
    only (the console). A project counts under the call of the application that made it (its first, a new
    one), so a renewal granted in another call does not count it twice. The jobs are summed per project
    first, then per call (the project-to-call map is read from an index alone: ix_applications_project_origin)."""
    if not actor.is_operator:
        raise Forbidden("only operators see the usage of every call")
    origin = (
        select(Application.project_id, Application.call_id)
        .where(Application.kind == ApplicationKind.new, Application.project_id.is_not(None))
        .distinct()
        .subquery()
    )
    filters: list[ColumnElement[bool]] = []
    if since is not None:
        filters.append(JobRecord.ended_at >= since)
    if until is not None:
        filters.append(JobRecord.ended_at < until)
    jobs = select(JobRecord.project_id, *_totals()).where(*filters).group_by(JobRecord.project_id).subquery()
    n, g, e, c, m, x = (jobs.c[i] for i in range(1, 7))
    rows = session.execute(
        select(origin.c.call_id, func.sum(n), func.sum(g), func.sum(e), func.sum(c), func.sum(m), func.sum(x))
        .join_from(jobs, origin, origin.c.project_id == jobs.c.project_id)
        .group_by(origin.c.call_id)
    )
    return {
        call_id: UsageTotals(jobs=int(n), gpu_hours=float(g), energy_kwh=float(e), co2_kg=float(c),
                             energy_measured_kwh=float(m), energy_modelled_kwh=float(x))
        for call_id, n, g, e, c, m, x in rows
    }


class PerCallCache:
    """``per_call``'s answers kept for ``ttl_s`` per period, for the operator console: they change only when
    the accounting import charges jobs (every few minutes), and summing every job of a year costs a large
    site a few hundred milliseconds (bench/portal.py). One per app (create_app: ``app.state``)."""

    def __init__(self, *, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._kept: dict[int | None, tuple[float, dict[str, UsageTotals]]] = {}

    def get(self, *, session: Session, actor: Actor, days: int | None) -> dict[str, UsageTotals]:
        """What the jobs that ended in the last ``days`` days (None: ever) used, per call."""
        if not actor.is_operator:
            raise Forbidden("only operators see the usage of every call")
        now = time.monotonic()
        kept = self._kept.get(days)
        if kept is not None and now - kept[0] < self.ttl_s:
            return kept[1]
        since = utcnow() - timedelta(days=days) if days else None
        found = per_call(session=session, actor=actor, since=since)
        self._kept[days] = (now, found)
        return found


def lines(r: ComputeReport) -> list[str]:
    period = f"{r.since:%Y-%m-%d}" if r.since else "the start"
    period += f" to {r.until:%Y-%m-%d}" if r.until else " to now"
    out = [
        f"{r.scope} {r.name}, from {period}: {r.jobs} jobs",
        f"  GPU-hours: {r.gpu_hours:.2f} (of {r.allocated_gpu_hours:g} allocated)",
        f"  energy:    {r.energy_kwh:.3f} kWh ({r.energy_measured_kwh:.3f} measured by Slurm, "
        f"{r.energy_modelled_kwh:.3f} from the power model)",
        f"  CO2:       {r.co2_kg:.3f} kg (grid {r.grid_intensity_g_per_kwh:g} g/kWh)",
        f"  tokens:    {r.tokens}",
    ]
    out += [f"  partition {p.partition}: {p.jobs} jobs, {p.gpu_hours:.2f} GPU-hours, {p.energy_kwh:.3f} kWh, "
            f"{p.co2_kg:.3f} kg CO2" for p in r.partitions]
    return out


def to_csv(r: ComputeReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["scope", "name", "partition", "jobs", "gpu_hours", "energy_kwh", "co2_kg", "tokens"])
    for p in r.partitions:
        writer.writerow([r.scope, r.name, p.partition, p.jobs, f"{p.gpu_hours:.6f}", f"{p.energy_kwh:.6f}",
                         f"{p.co2_kg:.6f}", ""])
    writer.writerow([r.scope, r.name, "total", r.jobs, f"{r.gpu_hours:.6f}", f"{r.energy_kwh:.6f}",
                     f"{r.co2_kg:.6f}", r.tokens])
    return buffer.getvalue()
