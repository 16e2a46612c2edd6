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
from typing import cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from jaif.allocations.models import Allocation, AllocationStatus, Resource


@dataclass(frozen=True)
class GpuCharge:
    project_id: str
    partition: str
    gpu_hours: float
    at: datetime  # when the job ended


@dataclass
class _Book:
    """An allocation's figures as plain values while a batch is charged (read as columns, not ORM objects)."""

    id: str
    status: str
    starts_at: datetime
    ends_at: datetime
    until: datetime | None  # revoked at
    amount: float
    used: float
    was: float  # used before the batch

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and (self.until is None or self.until > at)


def _books(session: Session, project_ids: list[str]) -> dict[tuple[str, str], list[_Book]]:
    """The projects' GPU-hour allocations, locked in one query in (starts_at, created_at, id) order: the
    order the allocation sweep locks them in too, so the two never deadlock."""
    a = Allocation
    books: dict[tuple[str, str], list[_Book]] = {}
    for id_, project_id, partition, status, starts, ends, revoked, amount, used in session.execute(
        select(a.id, a.project_id, a.partition, a.status, a.starts_at, a.ends_at, a.revoked_at, a.amount, a.used)
        .where(a.project_id.in_(project_ids), a.resource == Resource.gpu_hours)
        .order_by(a.starts_at, a.created_at, a.id)
        .with_for_update()
    ):
        until = (revoked or starts) if status == AllocationStatus.revoked else None
        books.setdefault((project_id, partition or ""), []).append(
            _Book(id_, status, starts, ends, until, amount, used, used)
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
        charged.append(first.id)
    changed = []
    for found in books.values():
        for book in found:
            status = book.status
            if status == AllocationStatus.active and book.used >= book.amount:
                status = AllocationStatus.exhausted
            if book.used != book.was or status != book.status:
                changed.append({"b_id": book.id, "b_used": book.used, "b_status": status})
    _write(session, changed)
    return charged


_UNNEST = text(
    "UPDATE allocations SET used = v.used, status = v.status FROM unnest(CAST(:ids AS text[]), "
    "CAST(:used AS float8[]), CAST(:states AS text[])) AS v(id, used, status) WHERE allocations.id = v.id"
)


def _write(session: Session, changed: list[dict]) -> None:
    """The new balances and states in one statement (PostgreSQL: UPDATE ... FROM unnest) or one executemany;
    allocations the session holds as objects are expired so that they show the new figures."""
    if not changed:
        return
    table = cast(Table, Allocation.__table__)
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # three arrays, however many allocations
        connection.execute(_UNNEST, {"ids": [r["b_id"] for r in changed], "used": [r["b_used"] for r in changed],
                                     "states": [r["b_status"] for r in changed]})
    else:
        connection.execute(
            update(table).where(table.c.id == bindparam("b_id"))
            .values(used=bindparam("b_used"), status=bindparam("b_status")),
            changed,
        )
    for r in changed:
        held = session.identity_map.get(identity_key(Allocation, r["b_id"]))
        if held is not None:
            session.expire(held, ["used", "status"])
