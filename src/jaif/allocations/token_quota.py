"""A project's inference token quota is derived from its token allocations: one source of truth.

The gateway enforces ``projects.token_quota`` (metering/quota.py, docs/gateway.md). Nothing but
``sync_token_quota`` writes it, and that runs on every change of a token allocation and in the sweep:

- Tokens are attributed to allocations oldest first (FIFO). ``projects.tokens_attributed`` is the
  ``tokens_spent`` up to which spend has been attributed; each sync hands the spend since then to the
  allocations active now, each up to its amount. Spend that no allocation covers (made before the first
  token allocation, or from leases still out when the last one ended) is not attributed to any.
- quota = tokens_spent + what the active allocations (started, not ended) have left, and never below
  tokens_spent + tokens_leased, so the gateway's invariant ``spent + leased <= quota`` always holds.
- A project that never had a token allocation is unlimited: its quota stays None.

The project row is locked first (FOR NO KEY UPDATE, the lock order of metering/quota.py), so a
concurrent usage flush of the gateway waits and nothing is attributed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import BigInteger, case, cast, func, select
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.allocations.models import Allocation, AllocationStatus, Resource
from jaif.db.base import utcnow
from jaif.errors import NotFound


class Bucket(Protocol):
    amount: float
    used: float


def attribute(tokens: int, buckets: Sequence[Bucket]) -> int:
    """Charge ``tokens`` to ``buckets`` in order, each up to its amount; returns what none could take."""
    for bucket in buckets:
        if tokens <= 0:
            break
        room = max(0, int(bucket.amount) - int(bucket.used))
        take = min(room, tokens)
        bucket.used = int(bucket.used) + take
        tokens -= take
    return tokens


def lock_project(session: Session, project_id: str) -> Project:
    """The project row, locked and re-read (the gateway changes tokens_spent and tokens_leased)."""
    project = session.execute(
        select(Project)
        .where(Project.id == project_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project {project_id!r}", param="project_id")
    return project


def _runs(allocation: Allocation, now: datetime) -> bool:
    return allocation.status == AllocationStatus.active and allocation.starts_at <= now < allocation.ends_at


def sync_token_quota(session: Session, project_id: str, *, now: datetime | None = None) -> int | None:
    """Attribute new spend, mark ended and used-up token allocations, and derive the project's quota."""
    now = now or utcnow()
    project = lock_project(session, project_id)
    allocations = list(
        session.scalars(
            select(Allocation)
            .where(Allocation.project_id == project_id, Allocation.resource == Resource.tokens)
            .order_by(Allocation.starts_at, Allocation.created_at, Allocation.id)
        )
    )
    if not allocations:
        project.token_quota = None
        project.tokens_attributed = project.tokens_spent
        session.flush()
        return None
    new_spend = project.tokens_spent - project.tokens_attributed
    if new_spend > 0:
        takers = [a for a in allocations if a.status == AllocationStatus.active and a.starts_at <= now]
        attribute(new_spend, takers)
    project.tokens_attributed = project.tokens_spent
    for allocation in allocations:
        if allocation.status != AllocationStatus.active:
            continue
        if allocation.used >= allocation.amount:
            allocation.status = AllocationStatus.exhausted
        elif allocation.ends_at <= now:
            allocation.status = AllocationStatus.expired
    left = sum(int(a.amount) - int(a.used) for a in allocations if _runs(a, now))
    project.token_quota = max(project.tokens_spent + left, project.tokens_spent + project.tokens_leased)
    session.flush()
    return project.token_quota


def stale_projects(session: Session, *, now: datetime, project_ids: list[str] | None = None) -> list[str]:
    """The projects with an active token allocation on which ``sync_token_quota`` would change something
    now: spend not yet attributed, an active allocation used up or ended, or a quota other than the one
    its running allocations give (one that started since). Sorted, the order projects are locked in.

    The sweep syncs only these (``project_ids``: only among those), and pages only when their project is
    one: syncing every project with an allocation locked and rewrote thousands of unchanged rows each
    minute, and pages and the gateway's usage flush waited on the locks (bench/portal.py).
    """
    running = (Allocation.starts_at <= now) & (Allocation.ends_at > now)
    left = func.coalesce(func.sum(case(
        (running, cast(Allocation.amount, BigInteger) - cast(Allocation.used, BigInteger)), else_=0)), 0)
    due = func.sum(case(((Allocation.used >= Allocation.amount) | (Allocation.ends_at <= now), 1), else_=0))
    floor = Project.tokens_spent + Project.tokens_leased
    quota = case((Project.tokens_spent + left >= floor, Project.tokens_spent + left), else_=floor)
    query = (
        select(Project.id)
        .join(Allocation, Allocation.project_id == Project.id)
        .where(Allocation.resource == Resource.tokens, Allocation.status == AllocationStatus.active)
        .group_by(Project.id, Project.tokens_spent, Project.tokens_attributed, Project.tokens_leased,
                  Project.token_quota)
        .having((Project.tokens_spent != Project.tokens_attributed) | (due > 0)
                | Project.token_quota.is_distinct_from(quota))
        .order_by(Project.id)
    )
    if project_ids is not None:
        query = query.where(Project.id.in_(project_ids))
    return list(session.scalars(query))


def sync_stale(session: Session, project_ids: list[str], *, now: datetime | None = None) -> list[str]:
    """Bring the token books of those of ``project_ids`` that need it up to date (one query to find them, in
    the lock order), for a page that shows many projects' allocations at once; returns the synced ones."""
    if not project_ids:
        return []
    now = now or utcnow()
    unattributed = select(Project.id).where(
        Project.id.in_(project_ids), Project.token_quota.is_not(None), Project.tokens_spent != Project.tokens_attributed
    )
    stale = sorted(set(stale_projects(session, now=now, project_ids=project_ids)) | set(session.scalars(unattributed)))
    for project_id in stale:
        sync_token_quota(session, project_id, now=now)
    return stale
