"""Allocations: what a project may use, of which resource, in which window."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import Project
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class Resource(enum.StrEnum):
    gpu_hours = "gpu_hours"
    tokens = "tokens"


class AllocationStatus(enum.StrEnum):
    active = "active"
    expired = "expired"
    exhausted = "exhausted"
    revoked = "revoked"


class Allocation(Base):
    __tablename__ = "allocations"
    # Lists newest first (the operator console pages through them).
    __table_args__ = (Index("ix_allocations_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[str | None] = mapped_column(ForeignKey("applications.id"), nullable=True, index=True)
    resource: Mapped[str] = mapped_column(String(20))
    partition: Mapped[str | None] = mapped_column(String(100), nullable=True)  # for GPU-hours
    amount: Mapped[float] = mapped_column(Float)
    # What has been charged against this allocation (GPU-hours or tokens), kept by the allocation service.
    used: Mapped[float] = mapped_column(Float, default=0.0)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=AllocationStatus.active, index=True)
    created_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    project: Mapped[Project] = relationship()
