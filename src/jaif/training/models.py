"""Training events and registrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import User
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class TrainingEvent(Base):
    __tablename__ = "training_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    location: Mapped[str] = mapped_column(String(300), default="online")
    seats: Mapped[int] = mapped_column(Integer)
    registration_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    registrations: Mapped[list[TrainingRegistration]] = relationship(
        back_populates="event", cascade="all, delete-orphan"
    )


class TrainingRegistration(Base):
    __tablename__ = "training_registrations"
    __table_args__ = (UniqueConstraint("event_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("training_events.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="registered")  # registered | waitlisted | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[TrainingEvent] = relationship(back_populates="registrations")
    user: Mapped[User] = relationship()
