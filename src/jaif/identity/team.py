"""Project management by its principal investigators: members, invitations by e-mail, API keys.

Who may do what: operators everything; a project's PIs manage its members, invitations and keys;
its members see the member list and may leave. To anyone else the project does not exist (404), so
its existence is not revealed. API keys are made and revoked by access.service; this module decides
who may ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import ApiKey, Project, ProjectMember, ProjectRole, User
from jaif.access.schemas import Actor
from jaif.config import IdentitySettings
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.identity import emails
from jaif.identity.models import OneTimeToken, TokenPurpose
from jaif.identity.schemas import InvitationView, MemberView
from jaif.identity.service import (
    consume_one_time,
    email_problem,
    find_one_time,
    issue_one_time,
    normalise_email,
    wellformed_id,
)
from jaif.notify.mail import Mailer


def _project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id) if wellformed_id(project_id) else None
    if project is None:
        raise NotFound(f"no project {project_id!r}", param="project_id")
    return project


def role_in(*, session: Session, project_id: str, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    return session.scalar(
        select(ProjectMember.role).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
    )


def require_member(*, session: Session, actor: Actor, project_id: str) -> Project:
    """The project, if the actor is an operator or one of its members; else NotFound."""
    project = _project(session, project_id)
    if not actor.is_operator and role_in(session=session, project_id=project_id, user_id=actor.user_id) is None:
        raise NotFound(f"no project {project_id!r}", param="project_id")
    return project


def require_manager(*, session: Session, actor: Actor, project_id: str) -> Project:
    """The project, if the actor is an operator or one of its PIs; Forbidden for other members."""
    project = require_member(session=session, actor=actor, project_id=project_id)
    if not actor.is_operator and role_in(session=session, project_id=project_id, user_id=actor.user_id) != "pi":
        raise Forbidden("Only the project's principal investigators and operators may do this.")
    return project


def can_manage(*, session: Session, actor: Actor, project_id: str) -> bool:
    return actor.is_operator or role_in(session=session, project_id=project_id, user_id=actor.user_id) == "pi"


# --- members ------------------------------------------------------------------------------------------


def list_members(*, session: Session, actor: Actor, project_id: str) -> list[MemberView]:
    """The project's members. Internal user ids only for those who manage the team (PIs, operators), and
    each member's own; other members see names and addresses."""
    require_member(session=session, actor=actor, project_id=project_id)
    manager = can_manage(session=session, actor=actor, project_id=project_id)
    rows = session.execute(
        select(ProjectMember, User)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id)
        .order_by(ProjectMember.role.desc(), User.email)
    ).all()
    return [
        MemberView(user_id=u.id if manager or u.id == actor.user_id else None, email=u.email, name=u.name,
                   role=m.role, joined_at=m.created_at)
        for m, u in rows
    ]


def remove_member(*, session: Session, actor: Actor, project_id: str, user_id: str) -> None:
    """A PI or operator removes a member; a member may remove themself (leave). The last PI stays."""
    if actor.user_id == user_id:
        require_member(session=session, actor=actor, project_id=project_id)
    else:
        require_manager(session=session, actor=actor, project_id=project_id)
    member = None if not wellformed_id(user_id) else session.scalar(
        select(ProjectMember).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
    )
    if member is None:
        raise NotFound("this user is not a member of the project", param="user_id")
    if member.role == ProjectRole.pi:
        pis = session.scalars(
            select(ProjectMember.id).where(ProjectMember.project_id == project_id, ProjectMember.role == ProjectRole.pi)
        ).all()
        if len(pis) <= 1:
            raise Conflict("A project keeps at least one principal investigator; make someone else PI first.")
    session.delete(member)
    session.flush()


# --- invitations ----------------------------------------------------------------------------------------


def _view(row: OneTimeToken) -> InvitationView:
    return InvitationView(
        id=row.id,
        email=row.email,
        role=row.project_role or "member",
        project_id=row.project_id or "",
        expires_at=row.expires_at,
        created_at=row.created_at,
        accepted_at=row.used_at,
    )


def invite(
    *,
    session: Session,
    actor: Actor,
    project_id: str,
    email: str,
    role: str,
    settings: IdentitySettings,
    mailer: Mailer,
) -> InvitationView:
    """E-mail a link to join the project; an earlier pending invitation of the same address is replaced."""
    project = require_manager(session=session, actor=actor, project_id=project_id)
    email = normalise_email(email)
    if problem := email_problem(email):
        raise InvalidRequest(problem, param="email")
    if role not in ProjectRole.__members__:
        raise InvalidRequest("role must be member or pi", param="role")
    member = session.scalar(
        select(User.id)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project_id, func.lower(User.email) == email.lower())
    )
    if member is not None:
        raise Conflict(f"{email} is a member of {project.name} already", param="email")
    session.execute(
        delete(OneTimeToken).where(
            OneTimeToken.purpose == TokenPurpose.invite,
            OneTimeToken.project_id == project_id,
            OneTimeToken.used_at.is_(None),
            func.lower(OneTimeToken.email) == email.lower(),
        )
    )
    row, secret = issue_one_time(
        session=session,
        purpose=TokenPurpose.invite,
        email=email,
        lifetime=timedelta(days=settings.invitation_days),
        project_id=project_id,
        project_role=role,
        created_by_id=actor.user_id,
    )
    body = emails.invitation_body(
        inviter=actor.email, project=project.name, role=role, link=mailer.link(f"/invitations/{secret}"),
        days=settings.invitation_days,
    )
    mailer.send(session=session, to=email, subject=f"Invitation to the project {project.name}", body=body,
                withhold=(secret,))
    return _view(row)


def list_invitations(*, session: Session, actor: Actor, project_id: str) -> list[InvitationView]:
    """The project's pending invitations (not accepted, not expired)."""
    require_manager(session=session, actor=actor, project_id=project_id)
    rows = session.scalars(
        select(OneTimeToken)
        .where(
            OneTimeToken.purpose == TokenPurpose.invite,
            OneTimeToken.project_id == project_id,
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > utcnow(),
        )
        .order_by(OneTimeToken.created_at, OneTimeToken.id)
    )
    return [_view(r) for r in rows]


def revoke_invitation(*, session: Session, actor: Actor, project_id: str, invitation_id: str) -> None:
    require_manager(session=session, actor=actor, project_id=project_id)
    if not wellformed_id(invitation_id):
        raise NotFound("no pending invitation with this id", param="invitation_id")
    done = session.execute(
        delete(OneTimeToken).where(
            OneTimeToken.id == invitation_id,
            OneTimeToken.purpose == TokenPurpose.invite,
            OneTimeToken.project_id == project_id,
            OneTimeToken.used_at.is_(None),
        )
    )
    if getattr(done, "rowcount", 0) != 1:  # a CursorResult: how many rows the DELETE removed
        raise NotFound("no pending invitation with this id", param="invitation_id")


@dataclass(frozen=True, slots=True)
class Invitation:
    """What the accept page shows about an invitation link."""

    email: str
    project_id: str
    project_name: str
    role: str
    inviter: str
    expires_at: datetime


def invitation(*, session: Session, token: str) -> Invitation:
    row = find_one_time(session=session, purpose=TokenPurpose.invite, secret=token)
    project = _project(session, row.project_id or "")
    inviter = session.get(User, row.created_by_id) if row.created_by_id else None
    return Invitation(
        email=row.email,
        project_id=project.id,
        project_name=project.name,
        role=row.project_role or "member",
        inviter=(inviter.name or inviter.email) if inviter else "An operator",
        expires_at=row.expires_at,
    )


def accept(*, session: Session, token: str, user_id: str) -> ProjectMember:
    """Join the project as the invitation says, if the signed-in user has the invited address. Single use."""
    row = find_one_time(session=session, purpose=TokenPurpose.invite, secret=token)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.email.lower() != row.email.lower():
        raise Forbidden(
            f"This invitation is for {row.email}, and you are signed in as {user.email}. "
            "Sign out, and sign in or create an account with the invited address."
        )
    consume_one_time(session=session, row=row)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link reached this mailbox
    member = session.scalar(
        select(ProjectMember).where(ProjectMember.project_id == row.project_id, ProjectMember.user_id == user.id)
    )
    if member is None:
        member = ProjectMember(project_id=row.project_id, user_id=user.id, role=row.project_role or "member")
        session.add(member)
    elif row.project_role == ProjectRole.pi:
        member.role = ProjectRole.pi
    session.flush()
    return member


# --- API keys of a project ------------------------------------------------------------------------------


def list_keys(*, session: Session, actor: Actor, project_id: str) -> list[ApiKey]:
    project = require_manager(session=session, actor=actor, project_id=project_id)
    return access.list_api_keys(session=session, project_name=project.name)


def create_key(
    *,
    session: Session,
    actor: Actor,
    project_id: str,
    name: str = "",
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """A new API key of the project, owned by the actor; the secret is shown once."""
    project = require_manager(session=session, actor=actor, project_id=project_id)
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidRequest("the expiry must be in the future", param="expires_in_days")
    return access.create_api_key(
        session=session,
        project_name=project.name,
        user_email=actor.email if actor.user_id else None,
        name=name.strip(),
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )


def revoke_key(*, session: Session, actor: Actor, project_id: str, key_id: str) -> ApiKey:
    require_manager(session=session, actor=actor, project_id=project_id)
    key = None if not wellformed_id(key_id) else session.scalar(
        select(ApiKey).where(ApiKey.project_id == project_id, ApiKey.job_id.is_(None),
                             (ApiKey.id == key_id) | (ApiKey.prefix == key_id))
    )
    if key is None:
        raise NotFound(f"the project has no key {key_id!r}", param="key_id")
    return access.revoke_api_key(session=session, prefix=key.prefix)
