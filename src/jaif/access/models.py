"""Access models: organisations, users, projects with members, and API keys."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class Sector(enum.StrEnum):
    academia = "academia"
    startup = "startup"
    sme = "sme"
    industry = "industry"
    public = "public"


class ProjectRole(enum.StrEnum):
    pi = "pi"
    member = "member"


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    sector: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    projects: Mapped[list[Project]] = relationship(back_populates="organisation")
    domains: Mapped[list[OrganisationDomain]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", order_by="OrganisationDomain.domain"
    )


class MembershipVia(enum.StrEnum):
    """Who confirmed a user's membership of their organisation (access/membership.py)."""

    member = "member"  # a confirmed member of the organisation
    operator = "operator"
    domain = "domain"  # recorded when a verified address in a registered domain is seen


class OrganisationDomain(Base):
    """An e-mail domain an operator registered for an organisation: a verified address in it confirms
    its holder's membership. One organisation per domain."""

    __tablename__ = "organisation_domains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="domains")


class User(Base):
    __tablename__ = "users"
    # Sign-in and invitations look users up by lower(email): an index of that, not a scan (migration 0022).
    __table_args__ = (Index("ix_users_email_lower", func.lower(text("email"))),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # argon2 hash; None for accounts that only sign in through single sign-on.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Platform role: user | reviewer | operator. Principal investigator is a role per project.
    role: Mapped[str] = mapped_column(String(20), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The organisation the user works for (eligibility is checked against it); optional.
    organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), nullable=True)
    # The membership is pending until confirmed (access/membership.py): when, and by whom (MembershipVia).
    organisation_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    organisation_confirmed_via: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Inference token allowance. None means unlimited. tokens_spent is settled use; tokens_leased is
    # what gateway processes hold as leases (reserved or not yet settled). Invariant, kept by
    # conditional UPDATEs: tokens_spent + tokens_leased <= token_quota.
    token_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_leased: Mapped[int] = mapped_column(BigInteger, default=0)
    # token_quota is derived from the project's token allocations (allocations/token_quota.py); this is the
    # tokens_spent up to which spend has been attributed to those allocations.
    tokens_attributed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Model names this project may use; None means every model.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="projects")
    members: Mapped[list[ProjectMember]] = relationship(back_populates="project")


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # Indexed: "the projects of this user" is in every page and list a user sees (access/visibility.py).
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default=ProjectRole.member)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # Only the SHA-256 of the key is kept: keys are 256-bit random, so a fast hash is safe and keeps
    # the gateway's hot path cheap; the prefix is for display and revocation.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    rpm_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tpm_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A job's own key (compute_jobs.id; no foreign key: made before the job row): listed nowhere, revoked
    # when the job ends.
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)

    project: Mapped[Project] = relationship()
    user: Mapped[User | None] = relationship()
