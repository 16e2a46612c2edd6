"""Applications: proposals to a call, kept as drafts until submitted, with reviews and a transition log."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import Organisation, Project, User
from jaif.calls.models import AccessCall
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class ApplicationState(enum.StrEnum):
    draft = "draft"
    submitted = "submitted"
    technical_review = "technical_review"
    peer_review = "peer_review"
    accepted = "accepted"
    rejected = "rejected"
    allocated = "allocated"
    withdrawn = "withdrawn"


class ApplicationKind(enum.StrEnum):
    new = "new"
    renewal = "renewal"
    top_up = "top_up"


class AiActRisk(enum.StrEnum):
    minimal = "minimal"
    limited = "limited"
    high = "high"
    unacceptable = "unacceptable"


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        # Lists newest change first (the operator console pages through them), all or by state; and
        # time-to-access per call (allocated, pending) read from indexes alone (bench/portal.py).
        Index("ix_applications_updated", "updated_at", "id"),
        Index("ix_applications_state_updated", "state", "updated_at", "id"),
        Index("ix_applications_call_allocated", "call_id", "allocated_at", "submitted_at"),
        Index("ix_applications_call_state", "call_id", "state"),
        # Which call made each project (its application of kind "new"): the console's energy per call,
        # read from this index alone (compute/reports.py, per_call).
        Index("ix_applications_project_origin", "project_id", "call_id",
              postgresql_where=text("kind = 'new'"), sqlite_where=text("kind = 'new'")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("access_calls.id"), index=True)
    applicant_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), nullable=True, index=True)
    # An organisation not yet known to jaif, as the applicant names it ({name, sector, country}); it is
    # created on submission. Used while organisation_id is unset.
    organisation_proposal: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    kind: Mapped[str] = mapped_column(String(20), default=ApplicationKind.new)
    # For renewals and top-ups: the project that gets more; for new ones: the project made on allocation.
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True, index=True)
    # The short name the project gets on allocation (an acronym); derived from the title if left empty.
    project_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    title: Mapped[str] = mapped_column(String(300), default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    domain: Mapped[str] = mapped_column(String(100), default="")
    team: Mapped[list[str]] = mapped_column(JSON, default=list)  # e-mail addresses of team members
    requested_gpu_hours: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)  # per partition
    requested_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    datasets: Mapped[str] = mapped_column(Text, default="")
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_act_risk: Mapped[str | None] = mapped_column(String(20), nullable=True)
    ai_act_notes: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default=ApplicationState.draft, index=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    allocated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    call: Mapped[AccessCall] = relationship()
    applicant: Mapped[User] = relationship(foreign_keys=[applicant_id])
    organisation: Mapped[Organisation | None] = relationship()
    project: Mapped[Project | None] = relationship()
    events: Mapped[list[ApplicationEvent]] = relationship(
        back_populates="application", order_by="ApplicationEvent.created_at", cascade="all, delete-orphan"
    )
    reviews: Mapped[list[Review]] = relationship(back_populates="application", cascade="all, delete-orphan")


class ApplicationEvent(Base):
    """One state transition: who moved the application, from where to where, when."""

    __tablename__ = "application_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    application: Mapped[Application] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("application_id", "reviewer_id", "stage"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))  # technical | peer
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 (poor) .. 5 (excellent)
    comment: Mapped[str] = mapped_column(Text, default="")
    assigned_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    application: Mapped[Application] = relationship(back_populates="reviews")
    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])
