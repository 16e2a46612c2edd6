"""/api/v1/organisations and /api/v1/projects: scoped to who asks; operators create."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from jaif.access import directory
from jaif.access.schemas import OrganisationIn, OrganisationOut, ProjectIn, ProjectOut, Sector
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB, CurrentActor, Operator

router = APIRouter(prefix="/api/v1", tags=["organisations and projects"])


@router.get("/organisations", response_model=list[OrganisationOut], summary="Organisations you belong to",
            responses={**PAGED, **errors(400, 401)})
def list_organisations(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    sector: Sector | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2, description="Two-letter code.")] = None,
) -> list[OrganisationOut]:
    """Your organisation and those of your projects; operators see all. By name."""
    filters = {"sector": sector, "country": country}
    found = directory.list_organisations(session=session, actor=actor, **filters, limit=page.limit,
                                         offset=page.offset)
    api_paging.send(request, response, page, directory.count_organisations(session=session, actor=actor, **filters))
    return [OrganisationOut.model_validate(o) for o in found]


@router.post("/organisations", response_model=OrganisationOut, status_code=201,
             summary="Create an organisation (operators)", responses=errors(400, 401, 403, 409))
def create_organisation(body: OrganisationIn, session: DB, actor: Operator) -> OrganisationOut:
    return OrganisationOut.model_validate(directory.create_organisation(session=session, actor=actor, data=body))


@router.get("/organisations/{organisation_id}", response_model=OrganisationOut, summary="One organisation",
            responses=errors(401, 404))
def get_organisation(organisation_id: str, session: DB, actor: CurrentActor) -> OrganisationOut:
    org = directory.get_organisation(session=session, actor=actor, organisation_id=organisation_id)
    return OrganisationOut.model_validate(org)


@router.get("/projects", response_model=list[ProjectOut], summary="Your projects",
            responses={**PAGED, **errors(400, 401)})
def list_projects(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    organisation_id: Annotated[str | None, Query(max_length=32)] = None,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) projects.")] = None,
) -> list[ProjectOut]:
    """The projects you are a member of, with their token books; operators see all. By name."""
    filters = {"organisation_id": organisation_id, "active": active}
    found = directory.list_projects(session=session, actor=actor, **filters, limit=page.limit, offset=page.offset)
    api_paging.send(request, response, page, directory.count_projects(session=session, actor=actor, **filters))
    return [directory.project_out(p) for p in found]


@router.post("/projects", response_model=ProjectOut, status_code=201, summary="Create a project (operators)",
             responses=errors(400, 401, 403, 404, 409))
def create_project(body: ProjectIn, session: DB, actor: Operator) -> ProjectOut:
    return directory.project_out(directory.create_project(session=session, actor=actor, data=body))


@router.get("/projects/{project_id}", response_model=ProjectOut, summary="One project", responses=errors(401, 404))
def get_project(project_id: str, session: DB, actor: CurrentActor) -> ProjectOut:
    return directory.project_out(directory.get_project(session=session, actor=actor, project_id=project_id))
