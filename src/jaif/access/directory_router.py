"""/api/v1/organisations and /api/v1/projects: scoped to who asks; operators create."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jaif.access import directory
from jaif.access.schemas import OrganisationIn, OrganisationOut, ProjectIn, ProjectOut
from jaif.web.api_errors import errors
from jaif.web.deps import DB, CurrentActor, Operator

router = APIRouter(prefix="/api/v1", tags=["organisations and projects"])


@router.get("/organisations", response_model=list[OrganisationOut], summary="Organisations you belong to",
            responses=errors(401))
def list_organisations(session: DB, actor: CurrentActor) -> list[OrganisationOut]:
    """Your organisation and those of your projects; operators see all."""
    return [OrganisationOut.model_validate(o) for o in directory.list_organisations(session=session, actor=actor)]


@router.post("/organisations", response_model=OrganisationOut, status_code=201,
             summary="Create an organisation (operators)", responses=errors(400, 401, 403, 409))
def create_organisation(body: OrganisationIn, session: DB, actor: Operator) -> OrganisationOut:
    return OrganisationOut.model_validate(directory.create_organisation(session=session, actor=actor, data=body))


@router.get("/organisations/{organisation_id}", response_model=OrganisationOut, summary="One organisation",
            responses=errors(401, 404))
def get_organisation(organisation_id: str, session: DB, actor: CurrentActor) -> OrganisationOut:
    org = directory.get_organisation(session=session, actor=actor, organisation_id=organisation_id)
    return OrganisationOut.model_validate(org)


@router.get("/projects", response_model=list[ProjectOut], summary="Your projects", responses=errors(401))
def list_projects(
    session: DB, actor: CurrentActor, organisation_id: Annotated[str | None, Query(max_length=32)] = None
) -> list[ProjectOut]:
    """The projects you are a member of, with their token books; operators see all."""
    found = directory.list_projects(session=session, actor=actor, organisation_id=organisation_id)
    return [directory.project_out(p) for p in found]


@router.post("/projects", response_model=ProjectOut, status_code=201, summary="Create a project (operators)",
             responses=errors(400, 401, 403, 404, 409))
def create_project(body: ProjectIn, session: DB, actor: Operator) -> ProjectOut:
    return directory.project_out(directory.create_project(session=session, actor=actor, data=body))


@router.get("/projects/{project_id}", response_model=ProjectOut, summary="One project", responses=errors(401, 404))
def get_project(project_id: str, session: DB, actor: CurrentActor) -> ProjectOut:
    return directory.project_out(directory.get_project(session=session, actor=actor, project_id=project_id))
