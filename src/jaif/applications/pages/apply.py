"""Applying: the open calls with who may apply, the applicant's applications, and one application's status
with its decision and the reviewers' comments (never their names: applications/visibility.py decides).

The form itself, step by step, is in steps.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access import membership
from jaif.access.schemas import Actor
from jaif.applications import service as applications
from jaif.applications import visibility
from jaif.applications.schemas import DraftIn
from jaif.calls import service as calls
from jaif.calls.eligibility import organisation_problems
from jaif.calls.models import AccessCall
from jaif.errors import JaifError
from jaif.identity import service as identity
from jaif.identity.deps import PageUser, PageVisitor
from jaif.identity.schemas import OrganisationRef
from jaif.web.deps import DB
from jaif.web.display import SECTORS, render, sentence
from jaif.web.forms import attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def who_may_apply(call: AccessCall) -> dict[str, str]:
    countries = (
        ", ".join(call.eligible_countries)
        if call.eligible_countries is not None
        else "EU member states and countries associated to Horizon Europe"
    )
    sectors = ", ".join(SECTORS.get(s, s) for s in call.eligible_sectors) or "all sectors"
    return {"countries": countries, "sectors": sectors}


def eligibility(call: AccessCall, organisation: OrganisationRef | None) -> dict:
    """Whether the user's organisation may apply to ``call``, with the reasons when it may not."""
    if organisation is None:
        return {"known": False, "eligible": None, "reasons": []}
    problems = organisation_problems(
        name=organisation.name, country=organisation.country, sector=organisation.sector,
        eligible_countries=call.eligible_countries, eligible_sectors=call.eligible_sectors,
    )
    return {"known": True, "eligible": not problems, "reasons": [sentence(p.message) for p in problems]}


@router.get("/apply")
def apply_page(request: Request, session: DB, actor: PageVisitor) -> Response:
    """The open calls: public (a visitor signs in to apply)."""
    organisation = identity.me(session=session, actor=actor).organisation if actor.user_id else None
    offers = [
        {"call": calls.out(c), "who": who_may_apply(c), "eligibility": eligibility(c, organisation)}
        for c in calls.list_calls(session=session, actor=actor)
    ]
    if not actor.user_id:
        return render(request, "applications/calls.html", section="apply", offers=offers, organisation=None,
                      drafts=[], membership=None, visitor=True)
    drafts = [a for a in applications.list_applications(session=session, actor=actor, mine=True, limit=50)
              if a.state == "draft"]
    return render(request, "applications/calls.html", section="apply", offers=offers, organisation=organisation,
                  drafts=drafts, membership=membership.own_state(session=session, actor=actor))


@router.post("/apply/{call_ref}")
def start(request: Request, session: DB, actor: PageUser, call_ref: str) -> Response:
    """A new draft for the call, saved at once; then the first step of the form."""
    draft = applications.create_draft(session=session, actor=actor, data=DraftIn(call_id=call_ref))
    flash(request, "Your draft is saved, and every step you fill in is saved as you go.", "info")
    return RedirectResponse(f"/applications/{draft.id}/edit/proposal", status_code=303)


@router.get("/applications")
def my_applications(request: Request, session: DB, actor: PageUser) -> Response:
    mine = applications.list_applications(session=session, actor=actor, mine=True)
    return render(request, "applications/list.html", section="apply", applications=mine)


def _status_page(request: Request, session: Session, actor: Actor, application_id: str, *, errors=None,
                 status_code: int = 200) -> Response:
    application = applications.get_application(session=session, actor=actor, application_id=application_id)
    detail = visibility.detail(application, actor)
    my_review = next((r for r in application.reviews if r.reviewer_id == actor.user_id), None)
    return render(request, "applications/status.html", status_code, section="apply", app=detail, actor=actor,
                  my_review=my_review, errors=errors or {})


@router.get("/applications/{application_id}")
def status(request: Request, session: DB, actor: PageUser, application_id: str) -> Response:
    return _status_page(request, session, actor, application_id)


@router.post("/applications/{application_id}/withdraw")
def withdraw(request: Request, session: DB, actor: PageUser, application_id: str) -> Response:
    try:
        attempt(session, lambda: applications.withdraw(session=session, actor=actor, application_id=application_id))
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _status_page(request, session, actor, application_id, errors={"withdraw": sentence(exc.message)},
                            status_code=exc.status)
    flash(request, "Your application is withdrawn.")
    return RedirectResponse(f"/applications/{application_id}", status_code=303)


@router.post("/applications/{application_id}/delete")
def delete(request: Request, session: DB, actor: PageUser, application_id: str) -> Response:
    try:
        attempt(session, lambda: applications.delete_draft(session=session, actor=actor,
                                                           application_id=application_id))
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _status_page(request, session, actor, application_id, errors={"withdraw": sentence(exc.message)},
                            status_code=exc.status)
    flash(request, "The draft is deleted.")
    return RedirectResponse("/applications", status_code=303)
