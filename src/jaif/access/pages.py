"""Organisations in the portal: the operator console's list of organisations (create one; a form with a
mistake comes back with the error next to the field and the input kept), and an organisation's members
and e-mail domains (access/membership.py) for its confirmed members and operators: pending memberships
with a *Confirm* button each; operators also register and remove domains. Anyone else gets 404, as from
the API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access import directory, membership
from jaif.access.schemas import Actor, OrganisationIn
from jaif.errors import JaifError
from jaif.identity.deps import PageOperator, PageUser
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def _organisations_page(request: Request, session: Session, actor: Actor, *, page: str = "1", values=None,
                        errors=None, status_code: int = 200) -> Response:
    pager = Pager.of(request, page=page, total=directory.count_organisations(session=session, actor=actor))
    found = directory.list_organisations(session=session, actor=actor, limit=pager.size, offset=pager.offset)
    return render(request, "access/organisations.html", status_code, section="operator", organisations=found,
                  pager=pager, values=values or {}, errors=errors or {})


@router.get("/operator/organisations")
def organisation_list(request: Request, session: DB, actor: PageOperator,
                      page: Annotated[str, Query(max_length=12)] = "1") -> Response:
    return _organisations_page(request, session, actor, page=page)


@router.post("/operator/organisations")
def create_organisation(request: Request, session: DB, actor: PageOperator, form: FormFields) -> Response:
    values = {k: form.get(k, "").strip() for k in ("name", "sector", "country")}
    values["country"] = values["country"].upper()
    try:
        data = OrganisationIn(**values)
        org = attempt(session, lambda: directory.create_organisation(session=session, actor=actor, data=data))
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"].rstrip(".") + "." for e in reversed(exc.errors()) if e["loc"]}
    except JaifError as exc:
        errors = {exc.param or "name": sentence(exc.message)}
    else:
        flash(request, f"Organisation {org.name} is created.")
        return RedirectResponse("/operator/organisations", status_code=303)
    return _organisations_page(request, session, actor, values=values, errors=errors, status_code=400)


def _back(organisation_id: str) -> RedirectResponse:
    return RedirectResponse(f"/organisations/{organisation_id}/members", status_code=303)


@router.get("/organisations/{organisation_id}/members")
def members_page(request: Request, session: DB, actor: PageUser, organisation_id: str) -> Response:
    members = membership.members(session=session, actor=actor, organisation_id=organisation_id)
    org = directory.get_organisation(session=session, actor=actor, organisation_id=organisation_id)
    domains = membership.domains(session=session, actor=actor, organisation_id=organisation_id)
    return render(request, "access/members.html", section="operator" if actor.is_operator else "apply",
                  organisation=org, members=members, domains=domains)


@router.post("/organisations/{organisation_id}/members/confirm")
def confirm(request: Request, session: DB, actor: PageUser, organisation_id: str, form: FormFields) -> Response:
    email = form.get("email", "")
    try:
        done = attempt(session, lambda: membership.confirm(session=session, actor=actor,
                                                           organisation_id=organisation_id, email=email))
    except JaifError as exc:
        if exc.status == 404 and exc.param != "email":
            raise
        flash(request, sentence(exc.message), "error")
    else:
        flash(request, f"{done.email} is confirmed as a member.")
    return _back(organisation_id)


@router.post("/organisations/{organisation_id}/domains")
def domains(request: Request, session: DB, actor: PageUser, organisation_id: str, form: FormFields) -> Response:
    """Operators: ``action`` add or remove ``domain``."""
    domain, remove = form.get("domain", ""), form.get("action") == "remove"
    change = membership.remove_domain if remove else membership.add_domain
    try:
        attempt(session, lambda: change(session=session, actor=actor, organisation_id=organisation_id, domain=domain))
    except JaifError as exc:
        if exc.status == 404 and exc.param != "domain":
            raise
        flash(request, sentence(exc.message), "error")
    else:
        flash(request, f"{domain.strip()} is {'removed' if remove else 'registered'}.")
    return _back(organisation_id)
