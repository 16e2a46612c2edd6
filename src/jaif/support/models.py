"""Support desk models."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import Project, User
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class SupportCategory(enum.StrEnum):
    onboarding = "onboarding"
    porting = "porting"  # getting code to run on the machine
    scaling = "scaling"  # multi-node training, performance
    fine_tuning = "fine_tuning"
    inference = "inference"
    data = "data"  # datasets, personal data, transfers
    ai_act = "ai_act"  # regulatory questions
    other = "other"


class SupportStatus(enum.StrEnum):
    open = "open"
    in_progress = "in_progress"
    waiting_for_user = "waiting_for_user"
    resolved = "resolved"
    closed = "closed"


class SupportRequest(Base):
    __tablename__ = "support_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    requester_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True, index=True)
    category: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=SupportStatus.open, index=True)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    project: Mapped[Project | None] = relationship()
    replies: Mapped[list[SupportReply]] = relationship(
        back_populates="request", order_by="SupportReply.created_at", cascade="all, delete-orphan"
    )


class SupportReply(Base):
    __tablename__ = "support_replies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("support_requests.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    # Operators' notes to each other, never shown to the requester.
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    request: Mapped[SupportRequest] = relationship(back_populates="replies")
    author: Mapped[User] = relationship()
