"""Portal pages of the catalogue: the solutions, and one solution's model card. Public: visitors who
are not signed in see the published solutions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from jaif.catalogue import service
from jaif.identity.deps import PageVisitor
from jaif.web.deps import DB, public_base_url
from jaif.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/catalogue")
def catalogue_list(
    request: Request,
    session: DB,
    actor: PageVisitor,
    q: Annotated[str, Query(max_length=200)] = "",
    domain: Annotated[str, Query(max_length=100)] = "",
    language: Annotated[str, Query(max_length=50)] = "",
) -> Response:
    solutions = service.list_solutions(
        session=session, actor=actor, q=q, domain=domain, language=language, include_unpublished=actor.is_operator
    )
    context = {
        "solutions": solutions,
        "domains": service.list_domains(session=session, actor=actor),
        "chosen": {"q": q, "domain": domain, "language": language},
        "actor": actor,
    }
    return TEMPLATES.TemplateResponse(request, "catalogue/list.html", context)


@router.get("/catalogue/{slug}")
def catalogue_detail(request: Request, slug: str, session: DB, actor: PageVisitor) -> Response:
    solution = service.get_solution(session=session, actor=actor, slug=slug)
    context = {"solution": solution, "base_url": public_base_url(request), "actor": actor}
    return TEMPLATES.TemplateResponse(request, "catalogue/detail.html", context)
