"""Token quotas enforced with reservations over leased slices of a project's allowance.

The database is the source of truth: ``projects.tokens_spent + projects.tokens_leased <= token_quota``
is kept by conditional UPDATEs, so any number of gateway processes on one database never overspend.
Each process leases a slice (a ``quota_leases`` row), reserves from it in memory for each request
(prompt tokens + max_tokens, capped by the context), settles to the real count at the end, and turns
settled use into spend when the usage writer flushes. Idle slices are given back; a crashed process's
lease counts as spent until it expires, then any process reclaims it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from jaif.access.models import Project
from jaif.db.base import new_id, utcnow
from jaif.db.engine import transaction
from jaif.errors import QuotaExceeded
from jaif.metering.models import QuotaLease

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Reservation:
    project_id: str
    tokens: int
    leased: bool
    settled: bool = False


@dataclass(slots=True)
class LocalLease:
    lease_id: str
    available: int = 0  # leased and not reserved
    reserved: int = 0  # held by requests in flight
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class QuotaManager:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        holder: str,
        lease_tokens: int,
        lease_ttl_s: float,
        idle_return_s: float,
    ) -> None:
        self._factory = session_factory
        self.holder = holder
        self._lease_tokens = lease_tokens
        self._ttl = timedelta(seconds=lease_ttl_s)
        self._idle_return_s = idle_return_s
        self._leases: dict[str, LocalLease] = {}

    # -- request path (event loop) -------------------------------------------------------------
    async def reserve(self, *, project_id: str, has_quota: bool, tokens: int) -> Reservation:
        if not has_quota:
            return Reservation(project_id, tokens, leased=False)
        lease = self._leases.get(project_id)
        if lease is None:
            lease = self._leases.setdefault(project_id, LocalLease(lease_id=new_id()))
        if lease.available < tokens:
            async with lease.lock:
                if lease.available < tokens:
                    granted = await asyncio.to_thread(self._acquire, project_id, lease.lease_id, tokens - lease.available)
                    if granted is None:  # the project has no quota after all
                        return Reservation(project_id, tokens, leased=False)
                    lease.available += granted
            if lease.available < tokens:
                raise QuotaExceeded(
                    "You exceeded your project's token allowance: this request may need "
                    f"{tokens} tokens. Lower max_tokens or ask for a larger allocation.",
                    retry_after=self._ttl.total_seconds(),
                )
        lease.available -= tokens
        lease.reserved += tokens
        lease.last_used = time.monotonic()
        return Reservation(project_id, tokens, leased=True)

    def settle(self, reservation: Reservation, used: int) -> None:
        """Settle a reservation to what the request really used (0 on failure). Call exactly once."""
        if reservation.settled:
            raise RuntimeError("reservation settled twice")
        reservation.settled = True
        if not reservation.leased:
            return
        lease = self._leases[reservation.project_id]
        lease.reserved -= reservation.tokens
        # What was not used goes back to the slice; what was used stays leased until the usage
        # writer flushes it as spend (spend_in).
        lease.available += reservation.tokens - used

    # -- database side (threads) ---------------------------------------------------------------
    def _acquire(self, project_id: str, lease_id: str, need: int) -> int | None:
        """Lease at least ``need`` tokens; returns what was granted (0: not enough left), None: no quota."""
        for _ in range(5):
            with transaction(self._factory) as session:
                row = session.execute(
                    select(Project.token_quota, Project.tokens_spent, Project.tokens_leased).where(
                        Project.id == project_id
                    )
                ).one()
                if row.token_quota is None:
                    return None
                remaining = row.token_quota - row.tokens_spent - row.tokens_leased
                if remaining < need:
                    remaining += self._reclaim_expired(session, project_id)
                if remaining < need:
                    return 0
                # A quarter of what is left, at most lease_tokens: processes share a small allowance.
                grant = min(remaining, max(need, min(self._lease_tokens, remaining // 4)))
                taken = session.execute(
                    update(Project)
                    .where(
                        Project.id == project_id,
                        Project.tokens_spent + Project.tokens_leased + grant <= Project.token_quota,
                    )
                    .values(tokens_leased=Project.tokens_leased + grant)
                ).rowcount
                if not taken:
                    continue  # another process got there first; read again
                expires = utcnow() + self._ttl
                grown = session.execute(
                    update(QuotaLease)
                    .where(QuotaLease.id == lease_id)
                    .values(tokens=QuotaLease.tokens + grant, expires_at=expires)
                ).rowcount
                if not grown:
                    session.add(
                        QuotaLease(id=lease_id, project_id=project_id, holder=self.holder, tokens=grant, expires_at=expires)
                    )
                return grant
        return 0

    @staticmethod
    def _reclaim_expired(session: Session, project_id: str | None = None) -> int:
        query = delete(QuotaLease).where(QuotaLease.expires_at < utcnow())
        if project_id is not None:
            query = query.where(QuotaLease.project_id == project_id)
        freed_by_project: dict[str, int] = {}
        for pid, tokens in session.execute(query.returning(QuotaLease.project_id, QuotaLease.tokens)):
            freed_by_project[pid] = freed_by_project.get(pid, 0) + tokens
        for pid, tokens in freed_by_project.items():
            session.execute(
                update(Project).where(Project.id == pid).values(tokens_leased=Project.tokens_leased - tokens)
            )
            log.warning("reclaimed %d tokens of expired leases of project %s", tokens, pid)
        return sum(freed_by_project.values())

    def spend_in(self, session: Session, spent: dict[str, tuple[int, bool]]) -> None:
        """Turn flushed use into spend, inside the usage writer's transaction.

        ``spent`` maps project id to (tokens, leased). Leased use moves from tokens_leased to
        tokens_spent; use of a project without quota only adds to tokens_spent.
        """
        expires = utcnow() + self._ttl
        for project_id, (tokens, leased) in spent.items():
            lease = self._leases.get(project_id) if leased else None
            still_held = lease is not None and session.execute(
                update(QuotaLease)
                .where(QuotaLease.id == lease.lease_id)
                .values(tokens=QuotaLease.tokens - tokens, expires_at=expires)
            ).rowcount
            values = {"tokens_spent": Project.tokens_spent + tokens}
            if still_held:
                values["tokens_leased"] = Project.tokens_leased - tokens
            session.execute(update(Project).where(Project.id == project_id).values(**values))

    def heartbeat_in(self, session: Session) -> None:
        if self._leases:
            session.execute(
                update(QuotaLease).where(QuotaLease.holder == self.holder).values(expires_at=utcnow() + self._ttl)
            )

    # -- maintenance (event loop, calls into threads) -----------------------------------------
    def take_idle(self, *, everything: bool = False) -> dict[str, tuple[str, int]]:
        """Take unreserved tokens of idle slices off the books; give_back returns them to the database."""
        now = time.monotonic()
        taken = {}
        for project_id, lease in self._leases.items():
            if lease.available > 0 and (everything or (lease.reserved == 0 and now - lease.last_used > self._idle_return_s)):
                taken[project_id] = (lease.lease_id, lease.available)
                lease.available = 0
        return taken

    def untake(self, taken: dict[str, tuple[str, int]]) -> None:
        for project_id, (_lease_id, tokens) in taken.items():
            self._leases[project_id].available += tokens

    def give_back_in(self, session: Session, taken: dict[str, tuple[str, int]]) -> None:
        for project_id, (lease_id, tokens) in taken.items():
            held = session.execute(
                update(QuotaLease).where(QuotaLease.id == lease_id).values(tokens=QuotaLease.tokens - tokens)
            ).rowcount
            if held:
                session.execute(
                    update(Project).where(Project.id == project_id).values(tokens_leased=Project.tokens_leased - tokens)
                )
        session.execute(delete(QuotaLease).where(QuotaLease.holder == self.holder, QuotaLease.tokens <= 0))

    def reclaim_expired_in(self, session: Session) -> int:
        return self._reclaim_expired(session)
