"""Organisations and projects as the API shows them, scoped to who asks (access/visibility.py).

Operators see and create everything; a user sees the projects they are a member of, their own
organisation and those of their projects. Anything else answers NotFound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, false, func, select
from sqlalchemy.orm import Session, selectinload

from jaif.access import service as access
from jaif.access.models import Organisation, Project, ProjectMember
from jaif.access.schemas import Actor, OrganisationIn, ProjectIn, ProjectMemberOut, ProjectOut
from jaif.access.visibility import organisation_visible, project_visible
from jaif.errors import Forbidden, InvalidRequest, NotFound

_ID = re.compile(r"^[0-9a-f]{32}$")


def _operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise Forbidden("Only operators may do this.")


def _organisations_where(actor: Actor, *, sector: str | None, country: str | None) -> list[ColumnElement[bool]]:
    where = [organisation_visible(actor)]
    if sector is not None:
        where.append(Organisation.sector == sector)
    if country is not None:
        where.append(Organisation.country == country.upper())
    return where


def list_organisations(
    *, session: Session, actor: Actor, sector: str | None = None, country: str | None = None,
    limit: int | None = None, offset: int = 0,
) -> list[Organisation]:
    """By name (unique); a page of ``limit`` from ``offset``, or all."""
    where = _organisations_where(actor, sector=sector, country=country)
    query = select(Organisation).where(*where).order_by(Organisation.name, Organisation.id)
    return list(session.scalars(query.offset(max(0, offset)).limit(limit)))


def count_organisations(
    *, session: Session, actor: Actor, sector: str | None = None, country: str | None = None
) -> int:
    where = _organisations_where(actor, sector=sector, country=country)
    return session.scalar(select(func.count()).select_from(Organisation).where(*where)) or 0


def get_organisation(*, session: Session, actor: Actor, organisation_id: str) -> Organisation:
    org = None
    if _ID.match(organisation_id or ""):
        query = select(Organisation).where(Organisation.id == organisation_id, organisation_visible(actor))
        org = session.scalar(query)
    if org is None:
        raise NotFound(f"no organisation {organisation_id!r}", param="id")
    return org


def create_organisation(*, session: Session, actor: Actor, data: OrganisationIn) -> Organisation:
    _operator(actor)
    if not data.name.strip():
        raise InvalidRequest("give the organisation a name", param="name")
    return access.create_organisation(session=session, name=data.name.strip(), sector=data.sector, country=data.country)


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        organisation_id=project.organisation_id,
        organisation_name=project.organisation.name,
        description=project.description,
        is_active=project.is_active,
        token_quota=project.token_quota,
        tokens_spent=project.tokens_spent,
        tokens_leased=project.tokens_leased,
        allowed_models=project.allowed_models,
        members=[
            ProjectMemberOut(user_id=m.user_id, email=m.user.email, name=m.user.name, role=m.role)
            for m in sorted(project.members, key=lambda m: (m.role != "pi", m.user.email))
        ],
        created_at=project.created_at,
    )


def _projects() -> Select[Project]:
    return select(Project).options(
        selectinload(Project.organisation), selectinload(Project.members).selectinload(ProjectMember.user)
    )


def _projects_where(actor: Actor, *, organisation_id: str | None, active: bool | None) -> list[ColumnElement[bool]]:
    where = [project_visible(actor, Project.id)]
    if organisation_id is not None:
        where.append(Project.organisation_id == organisation_id if _ID.match(organisation_id) else false())
    if active is not None:
        where.append(Project.is_active.is_(active))
    return where


def list_projects(
    *, session: Session, actor: Actor, organisation_id: str | None = None, active: bool | None = None,
    limit: int | None = None, offset: int = 0,
) -> list[Project]:
    """By name (unique); a page of ``limit`` from ``offset``, or all."""
    where = _projects_where(actor, organisation_id=organisation_id, active=active)
    query = _projects().where(*where).order_by(Project.name, Project.id)
    return list(session.scalars(query.offset(max(0, offset)).limit(limit)))


def count_projects(
    *, session: Session, actor: Actor, organisation_id: str | None = None, active: bool | None = None
) -> int:
    where = _projects_where(actor, organisation_id=organisation_id, active=active)
    return session.scalar(select(func.count()).select_from(Project).where(*where)) or 0


@dataclass(frozen=True)
class MyProject:
    id: str
    name: str
    role: str
    organisation: str


def my_projects(*, session: Session, actor: Actor) -> list[MyProject]:
    """The projects ``actor`` is a member of, by name, with their role and organisation: one query."""
    if actor.user_id is None:
        return []
    rows = session.execute(
        select(Project.id, Project.name, ProjectMember.role, Organisation.name)
        .join(ProjectMember, ProjectMember.project_id == Project.id)
        .join(Organisation, Organisation.id == Project.organisation_id)
        .where(ProjectMember.user_id == actor.user_id)
        .order_by(Project.name, Project.id)
    ).all()
    return [MyProject(id=pid, name=name, role=role, organisation=org) for pid, name, role, org in rows]


def member_projects(*, session: Session, actor: Actor) -> list[Project]:
    """The projects ``actor`` is a member of, by name: one query, without their members or organisation."""
    if actor.user_id is None:
        return []
    member = select(ProjectMember.project_id).where(ProjectMember.user_id == actor.user_id)
    return list(session.scalars(select(Project).where(Project.id.in_(member)).order_by(Project.name, Project.id)))


def get_project(*, session: Session, actor: Actor, project_id: str, members: bool = True) -> Project:
    """A project ``actor`` may see, else NotFound; with its organisation and members loaded unless
    ``members`` is false (a page that shows neither saves three queries)."""
    project = None
    if _ID.match(project_id or ""):
        query = _projects() if members else select(Project)
        project = session.scalar(query.where(Project.id == project_id, project_visible(actor, Project.id)))
    if project is None:
        raise NotFound(f"no project {project_id!r}", param="id")
    return project


def create_project(*, session: Session, actor: Actor, data: ProjectIn) -> Project:
    """An operator makes a project (outside the application flow), optionally with its PI and tokens."""
    _operator(actor)
    if not data.name.strip():
        raise InvalidRequest("give the project a name", param="name")
    org = get_organisation(session=session, actor=actor, organisation_id=data.organisation_id)
    project = access.create_project(
        session=session,
        name=data.name.strip(),
        organisation=org.name,
        token_quota=data.token_quota,
        allowed_models=data.allowed_models,
        description=data.description,
    )
    if data.pi_email:
        access.add_member(session=session, project_name=project.name, email=data.pi_email, role="pi")
    session.flush()
    return get_project(session=session, actor=actor, project_id=project.id)
