"""The metering owner: one object per gateway process owns its quota leases (QuotaManager), its usage
ledger (UsageWriter) and its rate limiter, and nothing else drives them.

Its lifecycle:

- ``admit(principal, tokens=...)`` before a request reaches a model: reserves ``tokens`` of the
  project's allowance (QuotaExceeded, with Retry-After), then counts one request and those tokens in
  the key's rate-limit window (RateLimited, with Retry-After). The allowance comes first: a request
  the quota refuses uses up none of the key's window. Returns a Ticket.
- ``finish(ticket, outcome)`` exactly once, however the request ended: settles the reservation to
  what was used, queues the request's usage record, and corrects the key's tokens per minute to what
  was used. ``finish(ticket)`` without an outcome: refused after admission, before any model saw it;
  nothing is charged or recorded and its tokens per minute are given back (its request stays counted).
- ``tick()`` every ``interval_s`` (runtime.py's loop): flush usage records (with a heartbeat of this
  process's leases about four times per lease lifetime), give back idle slices, and every
  ``lease_reclaim_interval_s`` (at most half the lease lifetime) reclaim the leases of processes that
  died: those of processes on this host (and in this pid namespace) whose pid has ended, and any that
  expired.
- ``close()`` on shutdown: the last flush, every slice given back, its connections closed.

While the database is down (jaif/dependencies.py), admission draws on the slices already leased and
finishing queues records in memory as always; a request that needs a new slice gets 503
(DependencyUnavailable), never a 500. The rate limiter's outage behaviour is metering/ratelimit.py's.

Metering and quota enforcement have no setting that turns them off. ``metered=False`` exists for the
benchmark's baseline only (bench/gateway.py measures what metering costs, through bench/unmetered.py):
admission then reserves nothing and finishing records nothing; rate limits still hold.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from jaif.access.schemas import KeyPrincipal
from jaif.config import MeteringSettings
from jaif.db.engine import transaction
from jaif.dependencies import DATABASE, REDIS, DependencyHealth, outage_of, unavailable
from jaif.metering.ledger import UsageWriter
from jaif.metering.quota import QuotaManager, Reservation
from jaif.metering.ratelimit import DatabaseRateLimiter, OutageTolerant, RateLimiter, RedisRateLimiter
from jaif.metering.rows import LedgerEntry

log = logging.getLogger(__name__)


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class Ticket:
    """An admitted request: what finish() settles. Made with whose it is and the tokens admitted; the rest
    starts as the class's defaults (one is made per request)."""

    reservation: Reservation | None = None
    rate_limited = False
    finished = False

    def __init__(self, principal: KeyPrincipal, tokens: int) -> None:
        self.principal = principal
        self.tokens = tokens  # reserved of the allowance and counted in the key's tokens per minute


# How an admitted request ended: its usage record (rows.LedgerEntry) as the gateway builds it, less whose
# it is and when, which finish() fills in before queueing that same object (one object per request).
Outcome = LedgerEntry


def new_holder() -> str:
    """This process's name on its lease rows: ``host:pid:random``, where host names the host and its
    pid namespace (see this_host) and the random part tells apart two processes that had one pid."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def this_host() -> str:
    """The host name, and on Linux the pid namespace: processes that share both can see each other's
    process ids (two containers may share a host name, not a pid namespace)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace.removeprefix('pid:[').removesuffix(']')}"


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (another lease row's, from new_holder) names a process of this host and pid
    namespace that has ended: no process has its pid, or only a zombie not reaped yet. False when this
    process cannot tell (another host, another name format): that lease is reclaimed when it expires.
    A pid taken over since by another process reads as alive: that lease, too, waits for its expiry."""
    host, _, rest = holder.partition(":")
    pid_text, _, random_part = rest.partition(":")
    if host != this_host() or not pid_text.isdigit() or not random_part:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another Meter of this process, or one that had this pid before: let it expire
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has it
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Meter:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: MeteringSettings,
        *,
        redis_url: str | None = None,
        holder: str | None = None,
        pending: Gauge | None = None,
        metered: bool = True,
        health: DependencyHealth | None = None,
    ) -> None:
        """``redis_url``: where rate-limit windows live (None: the database). ``pending``: a gauge set
        to the number of queued usage records after each flush. ``metered``: False only for
        bench/gateway.py's baseline (see the module's docstring). ``health``: the process's
        DependencyHealth (the runtime's), told of outages met on the request path."""
        self._factory = session_factory
        self._health = health or DependencyHealth([DATABASE, REDIS] if redis_url else [DATABASE])
        self.quota = QuotaManager(
            session_factory,
            holder=holder or new_holder(),
            lease_tokens=settings.lease_tokens,
            lease_ttl_s=settings.lease_ttl_s,
            idle_return_s=settings.lease_idle_return_s,
            gone=holder_is_gone,
        )
        self.ledger = UsageWriter(session_factory, self.quota, max_rows=settings.flush_max_rows)
        self.limiter: RateLimiter = OutageTolerant(
            RedisRateLimiter(redis_url) if redis_url else DatabaseRateLimiter(session_factory),
            dependency=REDIS if redis_url else DATABASE,
            health=self._health,
            on_outage=settings.ratelimit_on_outage,
        )
        self.interval_s = settings.flush_interval_s
        # Extend leases about four times per lease lifetime, not on every flush.
        self._beat_every = max(1, int(settings.lease_ttl_s / 4 / settings.flush_interval_s))
        # Reclaim at least twice per lease lifetime, as often as the setting asks.
        reclaim_s = min(settings.lease_reclaim_interval_s, settings.lease_ttl_s / 2)
        self._reclaim_every = max(1, round(reclaim_s / settings.flush_interval_s))
        self._ticks = 0
        self._default_rpm = settings.default_rpm
        self._default_tpm = settings.default_tpm
        self._pending = pending
        self._metered = metered

    # -- the request path --------------------------------------------------------------------------
    async def admit(self, principal: KeyPrincipal, *, tokens: int) -> Ticket:
        """Reserve ``tokens`` of the project's allowance, then take them and one request from the key's
        rate-limit window. Raises QuotaExceeded or RateLimited; a refused request holds nothing."""
        ticket = Ticket(principal, tokens)
        p = principal
        if self._metered:
            ticket.reservation = self.quota.reserve_now(p.project_id, p.has_quota, tokens) or (
                await self._reserve(p, tokens)
            )
        rpm = p.rpm_limit if p.rpm_limit is not None else self._default_rpm
        tpm = p.tpm_limit if p.tpm_limit is not None else self._default_tpm
        if rpm is not None or tpm is not None:
            try:
                await self.limiter.acquire(p.key_id, rpm=rpm, tpm=tpm, tokens=tokens)
            except BaseException:
                if ticket.reservation is not None:
                    self.quota.settle(ticket.reservation, 0)
                ticket.finished = True
                raise
            ticket.rate_limited = True
        return ticket

    async def admit_uncharged(self, principal: KeyPrincipal) -> None:
        """One request of the key's rate-limit window (requests per minute; no tokens, no allowance) for a
        call that is not charged (/tokenize, /detokenize). Raises RateLimited."""
        rpm = principal.rpm_limit if principal.rpm_limit is not None else self._default_rpm
        if rpm is not None:
            await self.limiter.acquire(principal.key_id, rpm=rpm, tpm=None, tokens=0)

    async def _reserve(self, p: KeyPrincipal, tokens: int) -> Reservation:
        """A reservation that needs the database (a new slice): 503 while the database is down."""
        if self._health.is_down(DATABASE):
            self._health.affected(DATABASE, refused=True)
            raise unavailable(DATABASE)
        try:
            return await self.quota.reserve(project_id=p.project_id, has_quota=p.has_quota, tokens=tokens)
        except Exception as exc:
            if outage_of(exc) != DATABASE:
                raise
            self._health.failed(DATABASE, exc)
            self._health.affected(DATABASE, refused=True)
            raise unavailable(DATABASE) from None

    async def finish(self, ticket: Ticket, outcome: Outcome | None = None) -> None:
        """Settle an admitted request, exactly once: with its ``outcome``, charge what it used and queue
        its usage record; without one (refused after admission), charge and record nothing."""
        if ticket.finished:
            raise RuntimeError("ticket finished twice")
        ticket.finished = True
        used = outcome.prompt_tokens + outcome.completion_tokens if outcome is not None else 0
        reservation = ticket.reservation
        if reservation is not None:
            self.quota.settle(reservation, used)
        if outcome is not None and self._metered:
            p = ticket.principal
            outcome.created_at = time.time()
            outcome.project_id = p.project_id
            outcome.api_key_id = p.key_id
            # Charged to the lease it was reserved from, even if that lease was lost and replaced
            # meanwhile (metering/quota.py).
            outcome.lease_id = reservation.lease_id if reservation is not None and reservation.leased else None
            self.ledger.record(outcome)
        if ticket.rate_limited and used != ticket.tokens:
            # Last, and best effort: the usage record and the quota books above must not depend on the
            # limiter's store (Redis) still answering when the request ends. If it does not, the key's
            # minute keeps the reservation instead of what was used.
            try:
                await self.limiter.adjust(ticket.principal.key_id, tokens=used - ticket.tokens)
            except Exception:
                log.exception("adjusting the rate-limit window of key %s failed", ticket.principal.prefix)

    # -- periodic work and shutdown ---------------------------------------------------------------
    async def tick(self) -> None:
        """Flush usage (with a lease heartbeat every few ticks), give back idle slices, and now and
        then reclaim the leases of processes that ended or expired. Raises what failed; the next tick
        tries again."""
        self._ticks += 1
        try:
            await self.ledger.flush(heartbeat=self._ticks % self._beat_every == 0)
        finally:
            if self._pending is not None:
                self._pending.set(self.ledger.pending)
        await self._give_back(everything=False)
        if self._ticks % self._reclaim_every == 0:
            await asyncio.to_thread(self._reclaim)

    async def close(self) -> None:
        """On shutdown, after the last request: flush every queued record, give back every slice (and
        delete this process's lease rows), close connections. Nothing queued is lost."""
        await self.ledger.flush()
        await self.ledger.aclose()
        await self._give_back(everything=True)
        await self.limiter.aclose()

    def _reclaim(self) -> None:
        with transaction(self._factory) as session:
            self.quota.reclaim_stale_in(session)

    async def _give_back(self, *, everything: bool) -> None:
        taken = self.quota.take_idle(everything=everything)
        if not taken and not everything:  # on close, give_back_in also deletes this process's empty leases
            return

        def _write() -> None:
            with transaction(self._factory) as session:
                self.quota.give_back_in(session, taken)

        write = asyncio.ensure_future(asyncio.to_thread(_write))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # Cancelled mid-write (Runtime.stop cancels the tick): let the thread finish first (the process
            # exit right after stop would kill it, and the tokens would stay leased until the lease expires).
            await asyncio.wait([write])
            if write.exception() is not None:
                self.quota.untake(taken)
            raise
        except Exception:
            self.quota.untake(taken)
            raise
