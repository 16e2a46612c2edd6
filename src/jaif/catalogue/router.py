"""/api/v1/solutions: the catalogue of domain solutions and their model cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from jaif.catalogue import service
from jaif.catalogue.schemas import Solution, SolutionCreate, SolutionUpdate
from jaif.identity.deps import CurrentActor, Operator
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/solutions", tags=["catalogue"])


@router.get("", summary="Solutions in the catalogue", response_model=list[Solution],
            responses={**PAGED, **errors(400, 401)})
def list_solutions(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    language: Annotated[str | None, Query(max_length=50)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Words in name, summary or intended use.")] = None,
    include_unpublished: Annotated[bool, Query(description="Operators only; ignored for others.")] = False,
) -> list[Solution]:
    """By name."""
    found = service.list_solutions(
        session=session, actor=actor, domain=domain, language=language, q=q, include_unpublished=include_unpublished
    )
    return api_paging.cut(found, request, response, page)


@router.post("", status_code=201, summary="Add a solution (operators)", response_model=Solution)
def create_solution(body: SolutionCreate, session: DB, actor: Operator) -> Solution:
    return service.create_solution(session=session, actor=actor, **body.model_dump())


@router.get("/{slug}", summary="A solution with its model card", response_model=Solution)
def get_solution(slug: str, session: DB, actor: CurrentActor) -> Solution:
    return service.get_solution(session=session, actor=actor, slug=slug)


@router.patch("/{slug}", summary="Edit or (un)publish a solution (operators)", response_model=Solution)
def update_solution(slug: str, body: SolutionUpdate, session: DB, actor: Operator) -> Solution:
    return service.update_solution(session=session, actor=actor, slug=slug, changes=body.model_dump(exclude_unset=True))
