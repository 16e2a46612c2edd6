"""Who may see which project: the one scoping rule that projects, allocations and applications share.

Operators see everything; a user sees the projects they are a member of (as PI or member). Anything
else does not exist for them: lookups answer NotFound, never Forbidden, so ids leak nothing.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import Session

from jaif.access.models import Organisation, Project, ProjectMember, ProjectRole, User
from jaif.access.schemas import Actor


def member_project_ids(actor: Actor) -> Select[str]:
    """The ids of the projects ``actor`` is a member of, as a subquery."""
    return select(ProjectMember.project_id).where(ProjectMember.user_id == actor.user_id)


def project_visible(actor: Actor, project_id_column) -> ColumnElement[bool]:
    """A WHERE clause: rows whose ``project_id_column`` names a project ``actor`` may see."""
    if actor.is_operator:
        return true()
    if actor.user_id is None:
        return false()
    return project_id_column.in_(member_project_ids(actor))


def organisation_visible(actor: Actor) -> ColumnElement[bool]:
    """Operators see every organisation; a user their own and those of their projects."""
    if actor.is_operator:
        return true()
    if actor.user_id is None:
        return false()
    own = select(User.organisation_id).where(User.id == actor.user_id, User.organisation_id.is_not(None))
    of_projects = select(Project.organisation_id).where(Project.id.in_(member_project_ids(actor)))
    return Organisation.id.in_(own) | Organisation.id.in_(of_projects)


def is_pi(session: Session, *, user_id: str | None, project_id: str) -> bool:
    if user_id is None:
        return False
    return (
        session.scalar(
            select(ProjectMember.id).where(
                ProjectMember.project_id == project_id,
                ProjectMember.user_id == user_id,
                ProjectMember.role == ProjectRole.pi,
            )
        )
        is not None
    )
