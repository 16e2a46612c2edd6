"""/api/v1/organisations and /api/v1/projects: scoped to who asks; operators create."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from jaif.access import directory, membership
from jaif.access.schemas import (
    ConfirmMemberIn,
    DomainIn,
    OrganisationDomainsOut,
    OrganisationIn,
    OrganisationMemberOut,
    OrganisationOut,
    ProjectIn,
    ProjectOut,
    Sector,
)
from jaif.identity.deps import CurrentActor, Operator
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

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


@router.get("/organisations/{organisation_id}/members", response_model=list[OrganisationMemberOut],
            summary="Who named the organisation as theirs (its confirmed members, operators)",
            responses=errors(401, 404))
def list_members(organisation_id: str, session: DB, actor: CurrentActor) -> list[OrganisationMemberOut]:
    """Pending first, then by e-mail. Confirmed members of the organisation and operators only."""
    found = membership.members(session=session, actor=actor, organisation_id=organisation_id)
    return [OrganisationMemberOut.model_validate(m) for m in found]


@router.post("/organisations/{organisation_id}/members/confirm", response_model=OrganisationMemberOut,
             summary="Confirm that someone belongs to the organisation (its confirmed members, operators)",
             responses=errors(400, 401, 404))
def confirm_member(organisation_id: str, body: ConfirmMemberIn, session: DB,
                   actor: CurrentActor) -> OrganisationMemberOut:
    """A pending membership becomes confirmed: automatic grants need it (docs/access.md)."""
    found = membership.confirm(session=session, actor=actor, organisation_id=organisation_id, email=body.email)
    return OrganisationMemberOut.model_validate(found)


@router.get("/organisations/{organisation_id}/domains", response_model=OrganisationDomainsOut,
            summary="The e-mail domains the organisation registered", responses=errors(401, 404))
def list_domains(organisation_id: str, session: DB, actor: CurrentActor) -> OrganisationDomainsOut:
    return OrganisationDomainsOut(
        domains=membership.domains(session=session, actor=actor, organisation_id=organisation_id))


@router.post("/organisations/{organisation_id}/domains", response_model=OrganisationDomainsOut, status_code=201,
             summary="Register an e-mail domain of the organisation (operators)",
             responses=errors(400, 401, 403, 404, 409))
def add_domain(organisation_id: str, body: DomainIn, session: DB, actor: Operator) -> OrganisationDomainsOut:
    """A verified address in the domain confirms its holder's membership of the organisation by itself."""
    return OrganisationDomainsOut(domains=membership.add_domain(
        session=session, actor=actor, organisation_id=organisation_id, domain=body.domain))


@router.delete("/organisations/{organisation_id}/domains/{domain}", response_model=OrganisationDomainsOut,
               summary="Remove an e-mail domain of the organisation (operators)",
               responses=errors(400, 401, 403, 404))
def remove_domain(organisation_id: str, domain: str, session: DB, actor: Operator) -> OrganisationDomainsOut:
    return OrganisationDomainsOut(domains=membership.remove_domain(
        session=session, actor=actor, organisation_id=organisation_id, domain=domain))


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
    filters: dict[str, Any] = {"organisation_id": organisation_id, "active": active}
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
