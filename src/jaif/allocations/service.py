"""Allocations: what a project may use, of which resource (GPU-hours on a partition, or inference
tokens), in which window; status active | expired | exhausted | revoked.

Token allocations are the project's inference allowance: every change here ends in
``token_quota.sync_token_quota``, which derives ``projects.token_quota`` that the gateway enforces. GPU-hour
allocations are stored and reported here; Slurm accounting charges them (issue 4).

Who sees what: operators every allocation; a user those of the projects they are a member of (others
answer NotFound). Only operators create and revoke.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, joinedload

from jaif.access.models import Project, ProjectMember, ProjectRole, User
from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.allocations import gpu_hours
from jaif.allocations.models import Allocation, AllocationStatus, Resource
from jaif.allocations.schemas import AllocationOut
from jaif.allocations.token_quota import lock_project, stale_projects, sync_stale, sync_token_quota
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.notify.mail import Mailer

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0  # how often a running server sweeps (runtime.py)
DEFAULT_TOKEN_DAYS = 365  # `jaif project create --token-quota N` and `set-quota`: valid for a year
_ID = re.compile(r"^[0-9a-f]{32}$")


def months_later(start: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months on (the last day where that month is shorter)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def out(allocation: Allocation) -> AllocationOut:
    return AllocationOut(
        id=allocation.id,
        project_id=allocation.project_id,
        project_name=allocation.project.name,
        application_id=allocation.application_id,
        resource=allocation.resource,
        partition=allocation.partition,
        amount=allocation.amount,
        used=allocation.used,
        remaining=max(0.0, allocation.amount - allocation.used),
        starts_at=allocation.starts_at,
        ends_at=allocation.ends_at,
        status=allocation.status,
        created_at=allocation.created_at,
        revoked_at=allocation.revoked_at,
    )


def _window(starts_at: datetime | None, ends_at: datetime | None, days: float | None) -> tuple[datetime, datetime]:
    start = starts_at or utcnow()
    if ends_at is not None and days is not None:
        raise InvalidRequest("give ends_at or days, not both", param="days")
    if ends_at is None:
        if days is None:
            raise InvalidRequest("give ends_at or days: how long the allocation lasts", param="days")
        if not 0 < days <= 36500:
            raise InvalidRequest("days must be more than 0 and at most 36500", param="days")
        ends_at = start + timedelta(days=days)
    if ends_at <= start:
        raise InvalidRequest("an allocation must end after it starts", param="ends_at")
    return start, ends_at


def allocate(
    *,
    session: Session,
    project_id: str,
    resource: str,
    amount: float,
    partition: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    days: float | None = None,
    application_id: str | None = None,
    created_by_id: str | None = None,
) -> Allocation:
    """Create an allocation without a permission check: for services that checked it themselves."""
    if resource not in Resource.__members__:
        raise InvalidRequest("resource must be gpu_hours or tokens", param="resource")
    if resource == Resource.gpu_hours and not (partition or "").strip():
        raise InvalidRequest("GPU-hours are allocated on a partition: give one", param="partition")
    if resource == Resource.tokens and partition:
        raise InvalidRequest("token allocations have no partition", param="partition")
    if not 0 <= amount <= 1e15:
        raise InvalidRequest("amount must be 0 or more", param="amount")
    if resource == Resource.tokens and amount != int(amount):
        raise InvalidRequest("tokens are allocated in whole numbers", param="amount")
    start, end = _window(starts_at, ends_at, days)
    if resource == Resource.tokens:
        # Spend so far belongs to the allocations that ran while it was made, not to this new one.
        sync_token_quota(session, project_id)
    else:
        lock_project(session, project_id)  # first, in the lock order of the gateway's quota books
    allocation = Allocation(
        project_id=project_id,
        application_id=application_id,
        resource=resource,
        partition=partition.strip() if partition else None,
        amount=float(amount),
        used=0.0,
        starts_at=start,
        ends_at=end,
        status=AllocationStatus.active,
        created_by_id=created_by_id,
    )
    session.add(allocation)
    session.flush()
    if resource == Resource.tokens:
        sync_token_quota(session, project_id)
    return allocation


def _project(session: Session, actor: Actor, *, project_id: str | None = None, name: str | None = None) -> Project:
    query = select(Project).where(project_visible(actor, Project.id))
    query = query.where(Project.id == project_id) if project_id is not None else query.where(Project.name == name)
    wellformed = _ID.match(project_id) if project_id is not None else "\x00" not in (name or "\x00")
    project = session.scalar(query) if wellformed else None
    if project is None:
        raise NotFound(f"no project {project_id or name!r}", param="project")
    return project


def _pi_emails(session: Session, project_id: str) -> list[str]:
    return list(
        session.scalars(
            select(User.email)
            .join(ProjectMember, ProjectMember.user_id == User.id)
            .where(ProjectMember.project_id == project_id, ProjectMember.role == ProjectRole.pi)
        )
    )


def describe(allocation: Allocation) -> str:
    what = (
        f"{allocation.amount:g} GPU-hours on partition {allocation.partition}"
        if allocation.resource == Resource.gpu_hours
        else f"{int(allocation.amount)} inference tokens"
    )
    return f"{what}, from {allocation.starts_at:%Y-%m-%d} to {allocation.ends_at:%Y-%m-%d}"


def create_allocation(
    *,
    session: Session,
    actor: Actor,
    mailer: Mailer | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
    resource: str,
    amount: float,
    partition: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    days: float | None = None,
    partitions: Collection[str] | None = None,
) -> Allocation:
    """An operator allocates to a project (by id or name); its PIs are told by e-mail. ``partitions``: the
    site's (compute's ``partitions()``); GPU-hours on another are refused."""
    if not actor.is_operator:
        raise Forbidden("Only operators create allocations.")
    if amount <= 0:
        raise InvalidRequest("amount must be more than 0", param="amount")
    if partitions is not None and partition is not None and partition not in partitions:
        raise InvalidRequest(
            f"this site has no partition {partition!r}; it has {', '.join(sorted(partitions)) or 'none'}",
            param="partition",
        )
    project = _project(session, actor, project_id=project_id, name=project_name)
    allocation = allocate(
        session=session,
        project_id=project.id,
        resource=resource,
        amount=amount,
        partition=partition,
        starts_at=starts_at,
        ends_at=ends_at,
        days=days,
        created_by_id=actor.user_id,
    )
    if mailer is not None:
        for email in _pi_emails(session, project.id):
            mailer.send(
                session=session, to=email, subject=f"New allocation for project {project.name}",
                body=f"Project {project.name} has a new allocation: {describe(allocation)}.\n",
            )
    return allocation


def _stale(session: Session, project: Project) -> bool:
    """Whether a sync would change the project's token books; if not, a list reads them without locking."""
    return project.tokens_spent != project.tokens_attributed or bool(
        stale_projects(session, now=utcnow(), project_ids=[project.id])
    )


def _listed(session: Session, actor: Actor, *, project_id: str | None, project_name: str | None,
            status: str | None, resource: str | None, sync: bool) -> list:
    """The WHERE clauses of a list of allocations, shared by the list and its count."""
    where = [project_visible(actor, Allocation.project_id)]
    if project_id is not None or project_name is not None:
        project = _project(session, actor, project_id=project_id, name=project_name)
        if sync and project.token_quota is not None and resource != Resource.gpu_hours and _stale(session, project):
            sync_token_quota(session, project.id)  # a project without token allocations has no token books
        where.append(Allocation.project_id == project.id)
    if status is not None:
        if status not in AllocationStatus.__members__:
            raise InvalidRequest(f"status must be one of {', '.join(AllocationStatus.__members__)}", param="status")
        where.append(Allocation.status == status)
    if resource is not None:
        if resource not in Resource.__members__:
            raise InvalidRequest("resource must be gpu_hours or tokens", param="resource")
        where.append(Allocation.resource == resource)
    return where


def list_allocations(
    *,
    session: Session,
    actor: Actor,
    project_id: str | None = None,
    project_name: str | None = None,
    status: str | None = None,
    resource: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Allocation]:
    """Allocations ``actor`` may see, newest first (a page of ``limit`` from ``offset``, or all). Naming one
    project brings its token books up to date."""
    where = _listed(session, actor, project_id=project_id, project_name=project_name, status=status,
                    resource=resource, sync=True)
    query = (
        select(Allocation)
        .options(joinedload(Allocation.project))
        .where(*where)
        .order_by(Allocation.created_at.desc(), Allocation.id)
        .offset(max(0, offset))
        .limit(limit)
    )
    return list(session.scalars(query))


def allocations_of_projects(*, session: Session, actor: Actor, project_ids: list[str]) -> dict[str, list[Allocation]]:
    """The allocations of several projects at once, newest first per project, their token books brought up
    to date (a page of many projects, such as the home page, in a few queries); projects ``actor`` may not
    see have none here."""
    sync_stale(session, project_ids)
    found: dict[str, list[Allocation]] = {project_id: [] for project_id in project_ids}
    if project_ids:
        query = (
            select(Allocation)
            .options(joinedload(Allocation.project))
            .where(Allocation.project_id.in_(project_ids), project_visible(actor, Allocation.project_id))
            .order_by(Allocation.created_at.desc(), Allocation.id)
        )
        for allocation in session.scalars(query):
            found[allocation.project_id].append(allocation)
    return found


def count_allocations(
    *,
    session: Session,
    actor: Actor,
    project_id: str | None = None,
    project_name: str | None = None,
    status: str | None = None,
    resource: str | None = None,
) -> int:
    """How many allocations ``list_allocations`` pages through with the same filters."""
    where = _listed(session, actor, project_id=project_id, project_name=project_name, status=status,
                    resource=resource, sync=False)
    return session.scalar(select(func.count()).select_from(Allocation).where(*where)) or 0


def get_allocation(*, session: Session, actor: Actor, allocation_id: str) -> Allocation:
    allocation = None
    if _ID.match(allocation_id or ""):
        allocation = session.scalar(
            select(Allocation)
            .options(joinedload(Allocation.project))
            .where(Allocation.id == allocation_id, project_visible(actor, Allocation.project_id))
        )
    if allocation is None:
        raise NotFound(f"no allocation {allocation_id!r}", param="id")
    return allocation


def revoke_allocation(*, session: Session, actor: Actor, allocation_id: str) -> Allocation:
    """Revoke an active allocation (operators). Tokens spent under it so far stay attributed to it."""
    if not actor.is_operator:
        raise Forbidden("Only operators revoke allocations.")
    allocation = get_allocation(session=session, actor=actor, allocation_id=allocation_id)
    if allocation.resource == Resource.tokens:
        sync_token_quota(session, allocation.project_id)  # attribute spend up to now while it still runs
    if allocation.status != AllocationStatus.active:
        raise Conflict(f"allocation {allocation.id} is {allocation.status} already; only active ones are revoked")
    allocation.status = AllocationStatus.revoked
    allocation.revoked_at = utcnow()
    session.flush()
    if allocation.resource == Resource.tokens:
        sync_token_quota(session, allocation.project_id)
    return allocation


@dataclass
class SweepResult:
    expired: int = 0
    exhausted: int = 0
    projects_synced: int = 0


def sweep(*, session: Session, now: datetime | None = None) -> SweepResult:
    """Mark ended allocations expired and used-up ones exhausted; re-derive the token quotas.

    Every project with an active token allocation that needs it is synced (token_quota.stale_projects): that
    attributes recent spend, and picks up allocations that started since the last sweep.
    """
    now = now or utcnow()
    result = SweepResult()
    projects = stale_projects(session, now=now)
    before = dict(
        session.execute(
            select(Allocation.id, Allocation.status).where(
                Allocation.status == AllocationStatus.active, Allocation.resource == Resource.tokens,
                Allocation.project_id.in_(projects),
            )
        ).all()
    ) if projects else {}
    for project_id in projects:
        sync_token_quota(session, project_id, now=now)
    result.projects_synced = len(projects)
    if before:
        for status in session.scalars(select(Allocation.status).where(Allocation.id.in_(list(before)))):
            if status == AllocationStatus.expired:
                result.expired += 1
            elif status == AllocationStatus.exhausted:
                result.exhausted += 1
    # Locked in the order the compute accounting charges them in (gpu_hours.py), so the two never deadlock.
    for allocation in session.scalars(
        select(Allocation)
        .where(
            Allocation.status == AllocationStatus.active,
            Allocation.resource == Resource.gpu_hours,
            (Allocation.used >= Allocation.amount) | (Allocation.ends_at <= now),
        )
        .order_by(Allocation.starts_at, Allocation.created_at, Allocation.id)
        .with_for_update()
    ):
        if allocation.used >= allocation.amount:
            allocation.status = AllocationStatus.exhausted
            result.exhausted += 1
        elif allocation.ends_at <= now:
            allocation.status = AllocationStatus.expired
            result.expired += 1
    session.flush()
    if result.expired or result.exhausted:
        log.info("allocation sweep: %d expired, %d exhausted", result.expired, result.exhausted)
    return result


def grant_tokens(*, session: Session, project_id: str, tokens: int, days: float = DEFAULT_TOKEN_DAYS) -> Allocation:
    """A token allocation of ``tokens`` from now (``jaif project create --token-quota N``). An allocation
    of 0 is exhausted at once: the project is limited to what it spent."""
    if tokens < 0:
        raise InvalidRequest("token quota must be zero or more", param="token_quota")
    return allocate(session=session, project_id=project_id, resource=Resource.tokens, amount=tokens, days=days)


def set_token_allowance(
    *, session: Session, project_id: str, tokens: int | None, days: float = DEFAULT_TOKEN_DAYS
) -> int | None:
    """Make the project's quota ``tokens`` in all (``jaif project set-quota``): its active token
    allocations are revoked and one of ``tokens - spent`` (at least 0) replaces them. Returns the quota."""
    has_any = session.scalar(
        select(Allocation.id).where(Allocation.project_id == project_id, Allocation.resource == Resource.tokens)
    )
    if tokens is None:
        if has_any is None:
            return sync_token_quota(session, project_id)
        raise InvalidRequest(
            "this project's token quota comes from its token allocations and cannot be made unlimited; "
            "give a number of tokens, or revoke its allocations",
            param="tokens",
        )
    if tokens < 0:
        raise InvalidRequest("token quota must be zero or more", param="tokens")
    sync_token_quota(session, project_id)  # attribute spend to the allocations being replaced
    now = utcnow()
    for allocation in session.scalars(
        select(Allocation).where(
            Allocation.project_id == project_id,
            Allocation.resource == Resource.tokens,
            Allocation.status == AllocationStatus.active,
        )
    ):
        allocation.status = AllocationStatus.revoked
        allocation.revoked_at = now
    project = lock_project(session, project_id)
    allocate(
        session=session, project_id=project_id, resource=Resource.tokens,
        amount=max(0, tokens - project.tokens_spent), days=days,
    )
    return project.token_quota


GpuCharge = gpu_hours.GpuCharge


def charge_gpu_hours(*, session: Session, charges: list[GpuCharge]) -> list[str | None]:
    """Charge GPU-hours jobs used (compute accounting) to the project's allocations of their partition;
    returns per charge the allocation charged first, None where none covers the job (gpu_hours.py)."""
    return gpu_hours.charge(session, charges)


def fingerprint(*, session: Session) -> tuple:
    """Changes whenever any allocation is made, revoked, expired or exhausted: a cheap way for a
    server to notice allocation changes made by other processes (the CLI, another worker)."""
    return tuple(
        session.execute(
            select(
                func.count(),
                func.max(Allocation.created_at),
                func.max(Allocation.revoked_at),
                func.sum(case((Allocation.status == AllocationStatus.active, 1), else_=0)),
            )
        ).one()
    )
