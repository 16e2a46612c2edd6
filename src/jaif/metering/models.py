"""Metering models: one usage record per request, quota leases, rate-limit windows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class UsageRecord(Base):
    __tablename__ = "usage_records"
    # total_tokens rides along in the index (PostgreSQL): tokens per project and day read the index alone.
    __table_args__ = (
        Index("ix_usage_project_created", "project_id", "created_at", postgresql_include=["total_tokens"]),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # The gateway's request id: unique, so a record can never be written (charged) twice.
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True, index=True
    )
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
