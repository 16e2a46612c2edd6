"""Token quotas enforced with reservations over leased slices of a project's allowance.

The database is the source of truth: ``projects.tokens_spent + projects.tokens_leased <= token_quota``
is kept by conditional UPDATEs, so any number of gateway processes on one database never overspend.
Each process leases a slice (a ``quota_leases`` row), reserves from it in memory for each request
(prompt tokens + max_tokens, capped by the context), settles to the real count at the end, and turns
settled use into spend when the usage writer flushes. Idle slices are given back; a crashed process's
lease counts as spent until another process reclaims it: at once where that process can tell the
holder is gone (a process on the same host whose pid has ended: meter.holder_is_gone), else once the
lease expires (it was not renewed for lease_ttl_s).

A lease whose row is gone although this process still holds it (it missed its heartbeats for a whole
lease lifetime, and another process reclaimed it) is *lost*: its remembered slice is dropped, never
spent, and a new lease (a new row, a new id) is taken when needed. Reservations and usage records
carry the id of the lease they were drawn from, so use is always charged against the right row.

Every transaction that changes a project's books locks the project row(s) first, in id order, then
lease rows: with one lock order PostgreSQL cannot deadlock two of them. The project's columns
(token_quota, tokens_spent, tokens_leased) are access's: they are read, locked and written through
access.service (lock_token_books, token_books, lease_tokens, return_leased_tokens, spend_tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from jaif.access import service as access
from jaif.db.base import new_id, utcnow
from jaif.db.engine import transaction
from jaif.errors import QuotaExceeded
from jaif.metering.models import QuotaLease

log = logging.getLogger(__name__)

GROW_WITHIN_S = 1.0  # a slice used up faster than this: ask for twice as much next time
MAX_GROWTH = 64  # up to lease_tokens x this


@dataclass(slots=True)
class LocalLease:
    project_id: str
    lease_id: str
    available: int = 0  # leased and not reserved
    reserved: int = 0  # held by requests in flight
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_db: bool = False  # its row was written: a missing row now means the lease was lost
    lost: bool = False
    size: int = 0  # what the next grant asks for (0: lease_tokens); grows while slices go fast
    granted_at: float = 0.0  # monotonic time of the last grant


@dataclass(slots=True)
class Reservation:
    project_id: str
    tokens: int
    leased: bool
    settled: bool = False
    lease: LocalLease | None = None  # the lease it was drawn from

    @property
    def lease_id(self) -> str | None:
        return self.lease.lease_id if self.lease is not None else None


class _LeaseLost(Exception):
    """The row of a lease this process holds is gone (reclaimed after it expired)."""


class QuotaManager:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        holder: str,
        lease_tokens: int,
        lease_ttl_s: float,
        idle_return_s: float,
        gone: Callable[[str], bool] | None = None,
    ) -> None:
        """``gone(holder)``: True when the process named ``holder`` (another lease row's) is known to
        have ended (meter.holder_is_gone); its leases are then reclaimed before they expire."""
        self._factory = session_factory
        self.holder = holder
        self._gone = gone
        self._lease_tokens = lease_tokens
        self._ttl = timedelta(seconds=lease_ttl_s)
        self._idle_return_s = idle_return_s
        self._leases: dict[str, LocalLease] = {}

    # -- request path (event loop) -------------------------------------------------------------
    def reserve_now(self, project_id: str, has_quota: bool, tokens: int) -> Reservation | None:
        """Reserve without waiting where the slice in hand covers it (nearly every request); None
        where only reserve() can say (a new slice from the database, or a refusal). No coroutine, no
        keyword arguments: this runs on every request."""
        if not has_quota:
            return Reservation(project_id, tokens, False)
        lease = self._leases.get(project_id)
        if lease is None or lease.available < tokens:
            return None
        lease.available -= tokens
        lease.reserved += tokens
        lease.last_used = time.monotonic()
        return Reservation(project_id, tokens, True, False, lease)

    async def reserve(self, *, project_id: str, has_quota: bool, tokens: int) -> Reservation:
        if not has_quota:
            return Reservation(project_id, tokens, leased=False)
        while True:
            lease = self._leases.get(project_id)
            if lease is None:
                lease = self._leases[project_id] = LocalLease(project_id=project_id, lease_id=new_id())
            if lease.available < tokens:
                async with lease.lock:
                    # A loop, not one try: while this waits for the database, requests that needed no
                    # new tokens keep drawing on the slice, and what was granted may not cover this
                    # request any more although the project has tokens left.
                    while not lease.lost and lease.available < tokens:
                        need = tokens - lease.available
                        self._resize(lease)
                        try:
                            granted = await asyncio.to_thread(
                                self._acquire, project_id, lease.lease_id, need, lease.in_db, lease.size
                            )
                        except _LeaseLost:
                            self._drop(lease)
                            break
                        if granted is None:  # the project has no quota after all
                            return Reservation(project_id, tokens, leased=False)
                        if not granted:
                            break
                        lease.in_db = True
                        lease.available += granted
                        lease.granted_at = time.monotonic()
                if lease.lost:
                    continue  # reserve from a new lease
                if lease.available < tokens:
                    raise QuotaExceeded(
                        "You exceeded your project's token allowance: this request may need "
                        f"{tokens} tokens. Lower max_tokens or ask for a larger allocation.",
                        retry_after=self._ttl.total_seconds(),
                    )
            lease.available -= tokens
            lease.reserved += tokens
            lease.last_used = time.monotonic()
            return Reservation(project_id, tokens, leased=True, lease=lease)

    def _resize(self, lease: LocalLease) -> None:
        """Double the next grant while slices last under GROW_WITHIN_S, back to lease_tokens once use
        slows: a busy project must not cost a database transaction (and a lease row in every usage
        flush) many times a second. _acquire still grants at most a quarter of what is left, and idle
        slices go back after lease_idle_return_s, so a large slice is never held long for nothing."""
        if not lease.granted_at:
            lease.size = self._lease_tokens
        elif time.monotonic() - lease.granted_at < GROW_WITHIN_S:
            lease.size = min(lease.size * 2, self._lease_tokens * MAX_GROWTH)
        elif time.monotonic() - lease.granted_at > GROW_WITHIN_S * 8:
            lease.size = self._lease_tokens

    def settle(self, reservation: Reservation, used: int) -> None:
        """Settle a reservation to what the request really used (0 on failure). Call exactly once."""
        if reservation.settled:
            raise RuntimeError("reservation settled twice")
        reservation.settled = True
        if not reservation.leased:
            return
        lease = reservation.lease or self._leases[reservation.project_id]
        lease.reserved -= reservation.tokens
        # What was not used goes back to the slice (unless the lease was lost: the database no longer
        # counts it); what was used stays leased until the usage writer flushes it as spend (spend_in).
        if not lease.lost:
            lease.available += reservation.tokens - used

    def held(self) -> list[str]:
        """Ids of the leases whose rows this process keeps alive (for heartbeat_in; event loop)."""
        return [lease.lease_id for lease in self._leases.values() if lease.in_db]

    def forget(self, lost: set[str]) -> None:
        """Drop leases whose rows were found gone (event loop); their slices must not be spent."""
        for lease in list(self._leases.values()):
            if lease.lease_id in lost:
                self._drop(lease)

    def _drop(self, lease: LocalLease) -> None:
        # An empty lease's row may also be gone because give_back_in deleted it: nothing to report.
        log.log(
            logging.WARNING if lease.available or lease.reserved else logging.DEBUG,
            "lease %s of project %s is gone from the database (reclaimed after missed heartbeats?); "
            "dropping its %d unreserved tokens",
            lease.lease_id,
            lease.project_id,
            lease.available,
        )
        lease.lost = True
        lease.available = 0
        if self._leases.get(lease.project_id) is lease:
            del self._leases[lease.project_id]

    # -- database side (threads) ---------------------------------------------------------------
    def _acquire(
        self, project_id: str, lease_id: str, need: int, in_db: bool = False, size: int | None = None
    ) -> int | None:
        """Lease at least ``need`` tokens, ``size`` (default lease_tokens) if there are enough; returns
        what was granted (0: not enough left), None: no quota.

        Raises _LeaseLost when the lease's row was written before (``in_db``) and is gone now.
        """
        for _ in range(5):
            with transaction(self._factory) as session:
                # The project row first, as in every quota transaction (lock order; see lock_token_books).
                token_quota, spent, leased = access.token_books(session=session, project_id=project_id)
                if token_quota is None:
                    return None
                remaining = token_quota - spent - leased
                if remaining < need:
                    remaining += self._reclaim_stale(session, project_id)
                if remaining < need:
                    return 0
                # A quarter of what is left, at most size: processes share a small allowance.
                grant = min(remaining, max(need, min(size or self._lease_tokens, remaining // 4)))
                taken = access.lease_tokens(session=session, project_id=project_id, tokens=grant)
                if not taken:
                    continue  # another process got there first; read again
                expires = utcnow() + self._ttl
                grown = cast(CursorResult, session.execute(
                    update(QuotaLease)
                    .where(QuotaLease.id == lease_id)
                    .values(tokens=QuotaLease.tokens + grant, expires_at=expires)
                )).rowcount
                if not grown:
                    if in_db:
                        # Re-inserting it would let spend_in and give_back_in take from tokens_leased
                        # what the reclaim took already. Raising rolls this transaction back.
                        raise _LeaseLost(lease_id)
                    session.add(
                        QuotaLease(
                            id=lease_id, project_id=project_id, holder=self.holder, tokens=grant, expires_at=expires
                        )
                    )
                return grant
        return 0

    def _reclaim_stale(self, session: Session, project_id: str | None = None) -> int:
        """Delete the lease rows that expired, and those of processes known to be gone (see gone),
        of ``project_id`` (its row locked by the caller) or of every project; their tokens are no
        longer leased. Returns how many tokens were freed."""
        now = utcnow()
        others = select(QuotaLease.holder).where(QuotaLease.holder != self.holder).distinct()
        if project_id is not None:
            others = others.where(QuotaLease.project_id == project_id)
        dead = sorted(h for h in session.scalars(others) if self._gone is not None and self._gone(h))
        stale = or_(QuotaLease.expires_at < now, QuotaLease.holder.in_(dead)) if dead else QuotaLease.expires_at < now
        if project_id is not None:
            projects = [project_id]
        else:
            projects = sorted(session.scalars(select(QuotaLease.project_id).where(stale).distinct()))
            if not projects:
                return 0
            access.lock_token_books(session=session, project_ids=projects)
        query = delete(QuotaLease).where(stale, QuotaLease.project_id.in_(projects))
        freed_by_project: dict[str, int] = {}
        for pid, tokens in session.execute(query.returning(QuotaLease.project_id, QuotaLease.tokens)):
            freed_by_project[pid] = freed_by_project.get(pid, 0) + tokens
        for pid, tokens in freed_by_project.items():
            access.return_leased_tokens(session=session, project_id=pid, tokens=tokens)
            log.warning(
                "reclaimed %d tokens of project %s leased by processes that %s", tokens, pid,
                f"ended ({', '.join(dead)}) or missed their heartbeats" if dead else "missed their heartbeats",
            )  # fmt: skip
        return sum(freed_by_project.values())

    def spend_in(self, session: Session, spent: dict[tuple[str, str | None], int]) -> set[str]:
        """Turn flushed use into spend, inside the usage writer's transaction.

        ``spent`` maps (project id, lease id or None) to tokens. Use drawn from a lease moves from
        tokens_leased to tokens_spent; use of a project without quota, or from a lease reclaimed in
        the meantime (the reclaim freed its tokens already), only adds to tokens_spent. Returns the
        ids of such lost leases.
        """
        access.lock_token_books(session=session, project_ids={project_id for project_id, _ in spent})
        # Core statements built once, on the session's connection: the ORM's UPDATE (statement
        # building, cache keys, syncing the session) was most of what a usage flush cost.
        connection = session.connection()
        expires = utcnow() + self._ttl
        lost: set[str] = set()
        for (project_id, lease_id), tokens in sorted(spent.items(), key=lambda item: (item[0][0], item[0][1] or "")):
            still_held = (
                lease_id is not None
                and connection.execute(_SPEND_LEASE, {"lease": lease_id, "tokens": tokens, "expires": expires}).rowcount
            )
            if lease_id is not None and not still_held:
                lost.add(lease_id)
            access.spend_tokens(session=session, project_id=project_id, tokens=tokens, leased=bool(still_held))
        return lost

    def heartbeat_in(self, session: Session, lease_ids: list[str] | None = None) -> set[str]:
        """Extend this process's leases (``lease_ids``, from held(), taken on the event loop);
        returns the ids of those whose rows are gone: lost, for forget()."""
        extended = session.scalars(
            update(QuotaLease)
            .where(QuotaLease.holder == self.holder)
            .values(expires_at=utcnow() + self._ttl)
            .returning(QuotaLease.id)
        )
        return set(lease_ids or ()) - set(extended)

    # -- maintenance (event loop, calls into threads) -----------------------------------------
    def take_idle(self, *, everything: bool = False) -> dict[str, tuple[str, int]]:
        """Take unreserved tokens of idle slices off the books; give_back returns them to the database."""
        now = time.monotonic()
        taken = {}
        for project_id, lease in self._leases.items():
            idle = lease.reserved == 0 and now - lease.last_used > self._idle_return_s
            if lease.available > 0 and (everything or idle):
                taken[project_id] = (lease.lease_id, lease.available)
                lease.available = 0
        return taken

    def untake(self, taken: dict[str, tuple[str, int]]) -> None:
        for project_id, (lease_id, tokens) in taken.items():
            lease = self._leases.get(project_id)
            if lease is not None and lease.lease_id == lease_id:  # not if dropped as lost meanwhile
                lease.available += tokens

    def give_back_in(self, session: Session, taken: dict[str, tuple[str, int]]) -> None:
        access.lock_token_books(session=session, project_ids=taken)
        for project_id, (lease_id, tokens) in sorted(taken.items()):
            held = cast(CursorResult, session.execute(
                update(QuotaLease).where(QuotaLease.id == lease_id).values(tokens=QuotaLease.tokens - tokens)
            )).rowcount
            if held:
                access.return_leased_tokens(session=session, project_id=project_id, tokens=tokens)
        session.execute(delete(QuotaLease).where(QuotaLease.holder == self.holder, QuotaLease.tokens <= 0))

    def reclaim_stale_in(self, session: Session) -> int:
        """Reclaim the leases of every project that expired or whose processes are gone."""
        return self._reclaim_stale(session)


_SPEND_LEASE = (
    update(cast(Table, QuotaLease.__table__))
    .where(QuotaLease.id == bindparam("lease"))
    .values(tokens=QuotaLease.tokens - bindparam("tokens"), expires_at=bindparam("expires"))
)
