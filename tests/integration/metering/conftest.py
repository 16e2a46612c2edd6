"""Gateway "processes" on a real, migrated database (SQLite; PostgreSQL where JAIF_TEST_DATABASE_URL is
set): each a Meter (metering/meter.py) with an engine of its own, as each `jaif serve` process has.

What must hold whatever they do: tokens_spent + tokens_leased <= token_quota, tokens_leased is the sum
of the lease rows, and once everything is flushed and given back, tokens_spent is the sum of the usage
records.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text

from jaif.access import service as access
from jaif.access.models import Project
from jaif.access.schemas import KeyPrincipal
from jaif.config import MeteringSettings
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.errors import QuotaExceeded
from jaif.metering.meter import Meter, Outcome, Ticket
from jaif.metering.models import QuotaLease, UsageRecord
from jaif.metering.rows import LedgerEntry


@dataclass
class Books:
    quota: int | None
    spent: int
    leased: int
    lease_rows: int
    lease_tokens: int
    records: int
    record_tokens: int

    def check(self) -> None:
        """The invariants that hold at every moment, whatever the processes are doing."""
        assert self.leased == self.lease_tokens, self
        assert self.leased >= 0 and self.spent >= 0, self
        if self.quota is not None:
            assert self.spent + self.leased <= self.quota, self


def principal(project_id: str, *, has_quota: bool = True, key_id: str = "no-such-key", **limits) -> KeyPrincipal:
    """A key of the project, as the gateway's key cache hands it over (``limits``: rpm_limit, tpm_limit)."""
    return KeyPrincipal(
        key_id=key_id, prefix="test", project_id=project_id, project_name="p", user_id=None, allowed_models=None,
        has_quota=has_quota, rpm_limit=limits.get("rpm_limit"), tpm_limit=limits.get("tpm_limit"), expires_at=None,
    )  # fmt: skip


def outcome(used: int, *, status: str = "ok", status_code: int = 200) -> Outcome:
    """How a request that used ``used`` tokens ended, as the gateway reports it."""
    prompt = used // 2
    return Outcome(
        id=uuid.uuid4().hex, endpoint="chat.completions", model="m", replica=None, stream=False,
        prompt_tokens=prompt, completion_tokens=used - prompt, usage_source="upstream", latency_ms=1.0, ttft_ms=None,
        status=status, status_code=status_code,
    )  # fmt: skip


def entry(project_id: str, *, request_id: str | None = None, lease_id: str | None = None, **fields) -> LedgerEntry:
    """A usage record as the ledger queues it; ``fields`` override the defaults."""
    values = dict(
        id=request_id or uuid.uuid4().hex, created_at=time.time(), project_id=project_id, api_key_id=None,
        endpoint="chat.completions", model="m", replica=None, stream=False, prompt_tokens=5, completion_tokens=5,
        usage_source="upstream", latency_ms=1.0, ttft_ms=None, status="ok", status_code=200, lease_id=lease_id,
    )  # fmt: skip
    values.update(fields)
    return LedgerEntry(**values)


class Proc:
    """One gateway process: its own engine and meter. Its flush interval is a quarter of the lease
    lifetime, so each tick() heartbeats its leases and every second tick() reclaims stale ones.
    ``holder``: its name on lease rows (default: one that names no process, so only expiry frees its
    leases); meter.new_holder()'s form with another pid stands for a process of this host."""

    def __init__(
        self, url: str, *, lease_tokens: int = 1000, lease_ttl_s: float = 60.0, idle_return_s: float = 60.0,
        holder: str | None = None,
    ):  # fmt: skip
        self.engine = make_engine(url)
        self.factory = make_session_factory(self.engine)
        settings = MeteringSettings(
            lease_tokens=lease_tokens, lease_ttl_s=lease_ttl_s, lease_idle_return_s=idle_return_s,
            flush_interval_s=lease_ttl_s / 4, lease_reclaim_interval_s=lease_ttl_s / 2, flush_max_rows=50,
        )  # fmt: skip
        self.meter = Meter(self.factory, settings, holder=holder or f"test:{uuid.uuid4().hex[:8]}")

    async def reserve(self, project_id: str, tokens: int) -> Ticket:
        return await self.meter.admit(principal(project_id), tokens=tokens)

    async def finish(self, ticket: Ticket, used: int) -> Outcome:
        """End a request as the gateway does: settle it and queue its usage record."""
        done = outcome(used)
        await self.meter.finish(ticket, done)
        return done

    async def reclaim(self) -> None:
        """Two ticks: the second reclaims stale leases (of any process)."""
        await self.meter.tick()
        await self.meter.tick()


async def try_reserve(proc: Proc, project_id: str, tokens: int) -> Ticket | None:
    try:
        return await proc.reserve(project_id, tokens)
    except QuotaExceeded:
        return None


@pytest.fixture
async def db(database_url, test_databases):
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    procs: list[Proc] = []

    class Db:
        url = database_url
        sessions = factory  # a sessionmaker: no method binding

        @staticmethod
        def project(quota: int | None) -> str:
            with transaction(factory) as session:
                if not access.list_organisations(session=session):
                    access.create_organisation(session=session, name="Org", sector="academia", country="DE")
                name = f"p-{uuid.uuid4().hex[:8]}"
                return access.create_project(session=session, name=name, organisation="Org", token_quota=quota).id

        @staticmethod
        def proc(**kwargs) -> Proc:
            procs.append(Proc(database_url, **kwargs))
            return procs[-1]

        @staticmethod
        def books(project_id: str) -> Books:
            with factory() as session:
                quota, spent, leased = session.execute(
                    select(Project.token_quota, Project.tokens_spent, Project.tokens_leased).where(
                        Project.id == project_id
                    )
                ).one()
                rows, lease_tokens = session.execute(
                    select(func.count(), func.coalesce(func.sum(QuotaLease.tokens), 0)).where(
                        QuotaLease.project_id == project_id
                    )
                ).one()
                records, record_tokens = session.execute(
                    select(func.count(), func.coalesce(func.sum(UsageRecord.total_tokens), 0)).where(
                        UsageRecord.project_id == project_id
                    )
                ).one()
            return Books(quota, spent, leased, rows, lease_tokens, records, record_tokens)

        @staticmethod
        def execute(sql: str) -> None:
            with transaction(factory) as session:
                session.execute(text(sql))

    yield Db
    for proc in procs:
        await proc.meter.ledger.aclose()
        await proc.meter.limiter.aclose()
        proc.engine.dispose()
    engine.dispose()
