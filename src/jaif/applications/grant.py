"""What an accepted application gets: a project (new ones) and allocations.

A new application makes a project under its organisation, with the applicant as principal investigator
and the team members that have accounts as members. Renewals and top-ups add allocations to their
project: a renewal starts when the project's current allocations end, a top-up runs alongside them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import Organisation, Project, ProjectMember, User
from jaif.allocations import service as allocations
from jaif.allocations.models import Allocation, AllocationStatus, Resource
from jaif.applications.models import Application, ApplicationKind
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest


@dataclass
class Grant:
    """What to allocate: the request, or what the operator decided instead."""

    gpu_hours: dict[str, float]
    tokens: int
    duration_months: int | None

    @classmethod
    def requested(cls, application: Application, **overrides) -> Grant:
        gpu_hours = overrides.get("gpu_hours")
        tokens = overrides.get("tokens")
        months = overrides.get("duration_months")
        return cls(
            gpu_hours=dict(application.requested_gpu_hours if gpu_hours is None else gpu_hours),
            tokens=application.requested_tokens if tokens is None else tokens,
            duration_months=application.duration_months if months is None else months,
        )


@dataclass
class Granted:
    project: Project
    allocations: list[Allocation] = field(default_factory=list)
    missing_members: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "project"


def _free_name(session: Session, wanted: str) -> str:
    name, n = wanted, 1
    while session.scalar(select(Project.id).where(Project.name == name)) is not None:
        n += 1
        name = f"{wanted}-{n}"
    return name


def _new_project(session: Session, application: Application) -> tuple[Project, list[str]]:
    org = session.get(Organisation, application.organisation_id) if application.organisation_id else None
    if org is None:
        raise Conflict("the application has no organisation to make the project under", param="organisation")
    name = _free_name(session, application.project_name or _slug(application.title))
    project = access.create_project(
        session=session, name=name, organisation=org.name, description=application.abstract[:2000]
    )
    access.add_member(session=session, project_name=name, email=application.applicant.email, role="pi")
    missing = []
    for email in dict.fromkeys(e.strip().lower() for e in application.team):
        if not email or email == application.applicant.email.lower():
            continue
        user = session.scalar(select(User).where(func.lower(User.email) == email))
        if user is None:
            missing.append(email)
        else:
            access.add_member(session=session, project_name=name, email=user.email, role="member")
    return project, missing


def _add_missing_members(session: Session, project: Project, team: list[str]) -> list[str]:
    missing = []
    members = set(session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)))
    for email in dict.fromkeys(e.strip().lower() for e in team):
        user = session.scalar(select(User).where(func.lower(User.email) == email)) if email else None
        if user is None:
            if email:
                missing.append(email)
        elif user.id not in members:
            access.add_member(session=session, project_name=project.name, email=user.email, role="member")
    return missing


def _window(session: Session, application: Application, grant: Grant, now: datetime) -> tuple[datetime, datetime]:
    current_end = None
    if application.kind != ApplicationKind.new:
        current_end = session.scalar(
            select(func.max(Allocation.ends_at)).where(
                Allocation.project_id == application.project_id, Allocation.status == AllocationStatus.active
            )
        )
    if application.kind == ApplicationKind.renewal and current_end is not None and current_end > now:
        start = current_end
    else:
        start = now
    if grant.duration_months is not None:
        return start, allocations.months_later(start, grant.duration_months)
    if current_end is not None and current_end > now:  # a top-up without a duration ends with the project's
        return start, current_end
    return start, start + timedelta(days=30)


def grant(session: Session, application: Application, grant: Grant, *, actor_id: str | None) -> Granted:
    """Create the project (new applications) and the allocations of ``grant``."""
    for partition, hours in grant.gpu_hours.items():
        if hours < 0 or not partition.strip():
            raise InvalidRequest("GPU-hours are granted per partition, 0 or more", param="gpu_hours")
    if grant.tokens < 0:
        raise InvalidRequest("tokens granted must be 0 or more", param="tokens")
    now = utcnow()
    project: Project | None
    if application.kind == ApplicationKind.new:
        project, missing = _new_project(session, application)
        application.project_id = project.id
    else:
        project = session.get(Project, application.project_id) if application.project_id else None
        if project is None:
            raise Conflict("the project to renew or top up is gone", param="project_id")
        missing = _add_missing_members(session, project, application.team)
    start, end = _window(session, application, grant, now)
    made = Granted(project=project, missing_members=missing)
    for partition, hours in sorted(grant.gpu_hours.items()):
        if hours > 0:
            made.allocations.append(
                allocations.allocate(
                    session=session, project_id=project.id, resource=Resource.gpu_hours, partition=partition,
                    amount=hours, starts_at=start, ends_at=end, application_id=application.id, created_by_id=actor_id,
                )
            )
    if grant.tokens > 0:
        made.allocations.append(
            allocations.allocate(
                session=session, project_id=project.id, resource=Resource.tokens, amount=grant.tokens,
                starts_at=start, ends_at=end, application_id=application.id, created_by_id=actor_id,
            )
        )
    session.flush()
    return made


def capacity_problem(session: Session, application: Application, grant: Grant) -> str | None:
    """Whether the call still has what ``grant`` needs (first come, first served); None if it has."""
    call = application.call
    rows = session.execute(
        select(Allocation.resource, Allocation.partition, func.sum(Allocation.amount))
        .join(Application, Application.id == Allocation.application_id)
        .where(Application.call_id == call.id, Allocation.status != AllocationStatus.revoked)
        .group_by(Allocation.resource, Allocation.partition)
    ).all()
    given = {(resource, partition): total or 0.0 for resource, partition, total in rows}
    for partition, hours in grant.gpu_hours.items():
        left = (call.offered_gpu_hours or {}).get(partition, 0.0) - given.get((Resource.gpu_hours, partition), 0.0)
        if hours > left:
            return f"the call has {max(left, 0):g} GPU-hours left on {partition}, {hours:g} were asked"
    tokens_left = call.offered_tokens - given.get((Resource.tokens, None), 0.0)
    if grant.tokens > tokens_left:
        return f"the call has {max(tokens_left, 0):g} tokens left, {grant.tokens} were asked"
    return None
