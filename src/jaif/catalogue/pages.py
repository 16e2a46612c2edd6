"""Portal pages of the catalogue: the solutions, and one solution's model card. Public: visitors who
are not signed in see the published solutions. Operators add a solution and change one
(``/catalogue/new``, ``/catalogue/{slug}/edit``: the same service calls as the API and the CLI; a mistake
comes back beside its field with everything typed kept)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from jaif.catalogue import forms, service
from jaif.errors import JaifError
from jaif.identity.deps import PageOperator, PageVisitor
from jaif.web.deps import DB, public_base_url
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash
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


def _form_page(request: Request, *, slug: str | None, values: dict, errors: dict | None = None,
               status_code: int = 200) -> Response:
    return render(request, "catalogue/form.html", status_code, section="catalogue", slug=slug, values=values,
                  errors=errors or {})


def _kept(form: dict[str, str]) -> dict:
    return {**form, "is_published": bool(form.get("is_published"))}


@router.get("/catalogue/new")
def new_solution(request: Request, actor: PageOperator) -> Response:
    return _form_page(request, slug=None, values=forms.blank())


@router.post("/catalogue/new")
def create_solution(request: Request, session: DB, actor: PageOperator, form: FormFields) -> Response:
    data, errors = forms.parse(form, new=True)
    if not errors:
        try:
            made = attempt(session, lambda: service.create_solution(session=session, actor=actor, **data))
        except JaifError as exc:
            errors = {exc.param if exc.param in forms.FIELDS else "name": sentence(exc.message)}
        else:
            flash(request, f"{made.name} is in the catalogue" + ("." if made.is_published else ", as a draft."))
            return RedirectResponse(f"/catalogue/{made.slug}", status_code=303)
    return _form_page(request, slug=None, values=_kept(form), errors=errors, status_code=400)


@router.get("/catalogue/{slug}/edit")
def edit_solution(request: Request, slug: str, session: DB, actor: PageOperator) -> Response:
    solution = service.get_solution(session=session, actor=actor, slug=slug)
    return _form_page(request, slug=solution.slug, values=forms.values_of(solution))


@router.post("/catalogue/{slug}/edit")
def change_solution(request: Request, slug: str, session: DB, actor: PageOperator, form: FormFields) -> Response:
    service.get_solution(session=session, actor=actor, slug=slug)  # 404 first
    data, errors = forms.parse(form, new=False)
    if not errors:
        try:
            saved = attempt(session, lambda: service.update_solution(session=session, actor=actor, slug=slug,
                                                                     changes=data))
        except JaifError as exc:
            if exc.status == 404 and exc.param == "slug":
                raise
            errors = {exc.param if exc.param in forms.FIELDS else "name": sentence(exc.message)}
        else:
            flash(request, f"{saved.name} is saved.")
            return RedirectResponse(f"/catalogue/{slug}", status_code=303)
    return _form_page(request, slug=slug, values={**_kept(form), "slug": slug}, errors=errors, status_code=400)


@router.get("/catalogue/{slug}")
def catalogue_detail(request: Request, slug: str, session: DB, actor: PageVisitor) -> Response:
    solution = service.get_solution(session=session, actor=actor, slug=slug)
    context = {"solution": solution, "base_url": public_base_url(request), "actor": actor}
    return TEMPLATES.TemplateResponse(request, "catalogue/detail.html", context)
