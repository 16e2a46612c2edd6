"""Charging GPU-hours that jobs used to a project's GPU-hour allocations (the compute accounting import
calls this through allocations.service.charge_gpu_hours).

A job's GPU-hours go to the allocations of its project and partition whose window holds the time the
job ended (a revoked one only if it was revoked after that): oldest first, each up to its amount; what
none can take goes to the last of them, so ``used`` may pass ``amount`` (the compute was used). An
active allocation that is used up becomes exhausted. A job no allocation covers is charged to none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.allocations.models import Allocation, AllocationStatus, Resource


@dataclass(frozen=True)
class GpuCharge:
    project_id: str
    partition: str
    gpu_hours: float
    at: datetime  # when the job ended


@dataclass
class _Book:
    """An allocation's figures as plain values while a batch is charged (ORM attributes are slow)."""

    allocation: Allocation
    starts_at: datetime
    ends_at: datetime
    until: datetime | None  # revoked at
    amount: float
    used: float

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and (self.until is None or self.until > at)


def _books(session: Session, project_ids: list[str]) -> dict[tuple[str, str], list[_Book]]:
    """The projects' GPU-hour allocations, locked in one query in (starts_at, created_at, id) order: the
    order the allocation sweep locks them in too, so the two never deadlock."""
    books: dict[tuple[str, str], list[_Book]] = {}
    for a in session.scalars(
        select(Allocation)
        .where(Allocation.project_id.in_(project_ids), Allocation.resource == Resource.gpu_hours)
        .order_by(Allocation.starts_at, Allocation.created_at, Allocation.id)
        .with_for_update()
    ):
        until = (a.revoked_at or a.starts_at) if a.status == AllocationStatus.revoked else None
        books.setdefault((a.project_id, a.partition or ""), []).append(
            _Book(a, a.starts_at, a.ends_at, until, a.amount, a.used)
        )
    return books


def charge(session: Session, charges: Sequence[GpuCharge]) -> list[str | None]:
    """Charge each; returns per charge the id of the allocation charged first (None: no allocation)."""
    books = _books(session, sorted({c.project_id for c in charges}))
    charged: list[str | None] = []
    for c in charges:
        takers = [b for b in books.get((c.project_id, c.partition), ()) if b.covers(c.at)]
        if not takers:
            charged.append(None)
            continue
        left, first = c.gpu_hours, None
        for book in takers:
            take = min(left, max(0.0, book.amount - book.used))
            if take > 0:
                book.used += take
                left -= take
                first = first or book
            if left <= 0:
                break
        if left > 0:
            takers[-1].used += left
            first = first or takers[-1]
        first = first or takers[0]
        charged.append(first.allocation.id)
    for found in books.values():
        for book in found:
            a = book.allocation
            if book.used != a.used:
                a.used = book.used
            if a.status == AllocationStatus.active and a.used >= a.amount:
                a.status = AllocationStatus.exhausted
    session.flush()
    return charged
