"""A batch: its input file, where it stands, and which server runs it (a claim renewed while it runs)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jaif.db.base import Base, UTCDateTime, utcnow


class BatchStatus(enum.StrEnum):
    validating = "validating"
    in_progress = "in_progress"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    expired = "expired"
    cancelling = "cancelling"
    cancelled = "cancelled"

    @property
    def active(self) -> bool:
        """A runner has work to do on it."""
        return self in ACTIVE


ACTIVE = frozenset({BatchStatus.validating, BatchStatus.in_progress, BatchStatus.finalizing, BatchStatus.cancelling})


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_project_created", "project_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "batch_<hex>", as OpenAI's
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # The key whose rights, limits and allowance its requests use (the one that created it).
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(10))
    input_file_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=BatchStatus.validating.value)
    meta: Mapped[dict | None] = mapped_column("metadata", JSON, nullable=True)
    errors: Mapped[list | None] = mapped_column(JSON, nullable=True)  # validation errors, OpenAI's shape
    # The ids its result files get (chosen at creation, so that finishing can be repeated after a crash);
    # output_file_id and error_file_id are set once those files exist.
    output_file_reserved: Mapped[str] = mapped_column(String(40))
    error_file_reserved: Mapped[str] = mapped_column(String(40))
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    # The server running it (runner.py's holder name) and until when its claim holds unless renewed.
    runner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
