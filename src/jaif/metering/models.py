"""Metering models: one usage record per request, its daily roll-up, quota leases, rate-limit windows."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, synonym

from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class UsageRecord(Base):
    """One request's use. Every index and constraint here is paid for by every request (the usage writer
    inserts each record), so there are only those that a query needs: the primary key, and (project,
    time) for reports and `jaif usage`. Each insert also adds to usage_daily (UsageDaily), by trigger.

    No foreign keys: PostgreSQL checks one per row with a query of its own, which cost twice as much
    server CPU as the insert itself (bench/gateway.py). The ids come from a key the gateway has just
    authenticated, and jaif deletes neither projects nor keys (keys are revoked)."""

    __tablename__ = "usage_records"
    # total_tokens rides along in the index (PostgreSQL, migration 0021) for the tokens per project and day,
    # which read usage_daily since migration 0039: no query needs it there any more; dropping it is a
    # rebuild of the index, which holds up the usage writer meanwhile.
    __table_args__ = (
        Index("ix_usage_project_created", "project_id", "created_at", postgresql_include=["total_tokens"]),
    )

    # The gateway's request id (28 characters) is the primary key: unique, so a record can never be
    # written (charged) twice. Records from before migration 0023 keep a random id.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    request_id: Mapped[str] = synonym("id")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    project_id: Mapped[str] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # no query selects by key
    endpoint: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    replica: Mapped[str | None] = mapped_column(String(500), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # "upstream" when the backend reported usage, "tokenizer" when jaif counted.
    usage_source: Mapped[str] = mapped_column(String(20), default="upstream")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    status_code: Mapped[int] = mapped_column(Integer, default=200)
    # The client's own ``x-request-id`` (inference/endpoints.py), echoed back to it; None where it sent
    # none, and the client got this record's id instead.
    client_request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class UsageDaily(Base):
    """The usage records of one UTC day, project, model and API key, summed: what the usage page and
    ``/usage.csv`` read (metering/reports.py) instead of the records themselves.

    Kept in step with ``usage_records`` by the database itself (migration 0039), whoever writes: in
    PostgreSQL statement-level triggers on INSERT, UPDATE, DELETE (one aggregated upsert per statement,
    in key order, from its transition table) and TRUNCATE; in SQLite row-level triggers. Nothing in jaif
    writes this table. A migration that rebuilds usage_records in SQLite (batch_alter_table) drops the
    triggers with the old table and must create them again.

    The primary key leads with (project_id, day): the reports' range of one project's days."""

    __tablename__ = "usage_daily"

    project_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # UTC day of usage_records.created_at
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" for requests without a key
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)


class QuotaLease(Base):
    """A slice of a project's token allowance held by one gateway process.

    Counted in projects.tokens_leased until settled or returned; a crashed holder's lease counts as
    spent until expires_at, when any process may reclaim it.
    """

    __tablename__ = "quota_leases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    holder: Mapped[str] = mapped_column(String(200))
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateWindow(Base):
    """Requests and tokens of one API key in one fixed one-minute window (database rate limiter)."""

    __tablename__ = "rate_windows"

    api_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
