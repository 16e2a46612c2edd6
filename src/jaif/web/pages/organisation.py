"""An organisation's members and e-mail domains (access/membership.py), for its confirmed members and
operators: pending memberships with a *Confirm* button each; operators also register and remove domains.
Anyone else gets 404, as from the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from jaif.access import directory, membership
from jaif.errors import JaifError
from jaif.web.deps import DB, PageUser
from jaif.web.pages.common import FormFields, attempt, render, sentence
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def _back(organisation_id: str) -> RedirectResponse:
    return RedirectResponse(f"/organisations/{organisation_id}/members", status_code=303)


@router.get("/organisations/{organisation_id}/members")
def members_page(request: Request, session: DB, actor: PageUser, organisation_id: str) -> Response:
    members = membership.members(session=session, actor=actor, organisation_id=organisation_id)
    org = directory.get_organisation(session=session, actor=actor, organisation_id=organisation_id)
    domains = membership.domains(session=session, actor=actor, organisation_id=organisation_id)
    return render(request, "organisations/members.html", section="operator" if actor.is_operator else "apply",
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
