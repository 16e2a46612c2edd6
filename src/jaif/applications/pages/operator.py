"""The operator console's applications: the list by call and state, and one application with what the
operator may do next (assign reviewers, start a review stage, decide, allocate). A refused action (a
reviewer with a conflict of interest, a move the call's review mode does not allow) comes back with its
reason next to the field and what was typed kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.applications import reviews, visibility
from jaif.applications import service as applications
from jaif.calls import service as calls
from jaif.errors import JaifError
from jaif.identity import service as identity
from jaif.identity.deps import PageOperator
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB, IdentityConf
from jaif.web.display import STATE_LABELS, render, sentence
from jaif.web.forms import FormFields, FormStr, attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


@router.get("/operator/applications")
def application_list(
    request: Request, session: DB, actor: PageOperator,
    call: Annotated[str, Query(max_length=100)] = "", state: Annotated[str, Query(max_length=30)] = "",
    page: Annotated[str, Query(max_length=12)] = "1",
) -> Response:
    every = calls.list_calls(session=session, actor=actor, include_inactive=True)
    chosen_call = call if call in {c.slug for c in every} else ""
    chosen_state = state if state in STATE_LABELS else ""
    call_slug, state_name = chosen_call or None, chosen_state or None
    pager = Pager.of(request, page=page, total=applications.count_applications(session=session, actor=actor,
                                                                               call=call_slug, state=state_name))
    found = applications.application_rows(session=session, actor=actor, call=call_slug, state=state_name,
                                          limit=pager.size, offset=pager.offset)
    return render(request, "applications/operator_list.html", section="operator", applications=found,
                  calls=[(c.slug, c.name) for c in every], chosen={"call": chosen_call, "state": chosen_state},
                  pager=pager)


def _page(request: Request, session: Session, actor: Actor, application_id: str, *, values=None, errors=None,
          status_code: int = 200) -> Response:
    application = applications.get_application(session=session, actor=actor, application_id=application_id)
    detail = visibility.detail(application, actor)
    peer = detail.review_mode == "peer" and detail.state != "submitted"
    defaults = {"reviewer_email": "", "stage": "peer" if peer else "technical",
                "decision": "", "comment": "", "allocate": True,
                # The amounts to grant, what was asked for until the operator changes them.
                **{f"grant_gpu_hours.{p}": f"{h:g}" for p, h in detail.requested_gpu_hours.items()},
                "grant_tokens": str(detail.requested_tokens), "grant_months": str(detail.duration_months or "")}
    # The reviewer pool: everyone with the reviewer role (the Accounts page gives it).
    pool = [(u.email, f"{u.name} ({u.email})" if u.name else u.email) for u in identity.reviewers(session=session)]
    return render(request, "applications/operator_application.html", status_code, section="operator", app=detail,
                  values={**defaults, **(values or {})}, errors=errors or {}, reviewer_pool=pool)


def _done(request: Request, application_id: str, message: str) -> Response:
    flash(request, message)
    return RedirectResponse(f"/operator/applications/{application_id}", status_code=303)


@router.get("/operator/applications/{application_id}")
def application_page(request: Request, session: DB, actor: PageOperator, application_id: str) -> Response:
    return _page(request, session, actor, application_id)


@router.post("/operator/applications/{application_id}/reviewers")
def assign(request: Request, session: DB, actor: PageOperator, mailer: MailerDep, application_id: str,
           reviewer_email: FormStr = "", stage: FormStr = "technical") -> Response:
    values = {"reviewer_email": reviewer_email, "stage": stage}
    if not reviewer_email.strip():
        errors = {"reviewer_email": "Give the reviewer's e-mail address."}
        return _page(request, session, actor, application_id, values=values, errors=errors, status_code=400)
    try:
        attempt(session, lambda: reviews.assign(session=session, actor=actor, mailer=mailer,
                                                application_id=application_id, reviewer_email=reviewer_email,
                                                stage=stage))
    except JaifError as exc:
        field = "stage" if exc.param == "stage" else "reviewer_email"
        errors = {field: sentence(exc.message)}
        status = 400 if exc.status == 404 else exc.status  # an unknown reviewer is a mistake in the form
        return _page(request, session, actor, application_id, values=values, errors=errors, status_code=status)
    return _done(request, application_id, f"{reviewer_email.strip()} is asked for the {stage} review.")


@router.post("/operator/applications/{application_id}/stage")
def move_stage(request: Request, session: DB, actor: PageOperator, application_id: str,
               stage: FormStr = "") -> Response:
    try:
        attempt(session, lambda: applications.start_stage(session=session, actor=actor,
                                                          application_id=application_id, stage=stage))
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _page(request, session, actor, application_id, errors={"stage_move": sentence(exc.message)},
                     status_code=exc.status)
    return _done(request, application_id, f"The application is now {STATE_LABELS.get(stage, stage).lower()}.")


def _amount(text: str) -> float | None:
    try:
        value = float(text.replace(",", "").replace("_", "").strip())
    except ValueError:
        return None
    return value if 0 <= value <= 1e12 else None


def _grant(form: dict[str, str]) -> tuple[dict[str, float], int | None, int | None, dict[str, str]]:
    """The amounts an operator grants, from the decision form (prefilled with what was asked for): GPU-hours
    per partition (``grant_gpu_hours.<partition>``), tokens and months; an error per field that is wrong."""
    errors: dict[str, str] = {}
    hours: dict[str, float] = {}
    for name, text in form.items():
        if name.startswith("grant_gpu_hours."):
            value = _amount(text)
            if value is None:
                errors[name] = "Enter a number of GPU-hours, 0 or more."
            else:
                hours[name.removeprefix("grant_gpu_hours.")] = value
    tokens = _amount(form.get("grant_tokens", "0") or "0")
    if tokens is None or tokens != int(tokens):
        errors["grant_tokens"] = "Enter a whole number of tokens, 0 or more."
    months_text = form.get("grant_months", "").strip()
    whole = months_text.isascii() and months_text.isdigit()  # not "²", which isdigit() takes and int() refuses
    months = int(months_text) if whole and 1 <= int(months_text) <= 60 else None
    if months_text and months is None:
        errors["grant_months"] = "Enter 1 to 60 months."
    return hours, int(tokens) if tokens is not None and tokens == int(tokens) else None, months, errors


@router.post("/operator/applications/{application_id}/decision")
def decide(request: Request, session: DB, actor: PageOperator, mailer: MailerDep, conf: IdentityConf,
           application_id: str, form: FormFields) -> Response:
    decision, comment, allocate = form.get("decision", ""), form.get("comment", ""), form.get("allocate", "")
    values = {**form, "decision": decision, "comment": comment, "allocate": bool(allocate)}
    if decision not in ("accept", "reject"):
        errors = {"decision": "Choose to accept or to reject the application."}
        return _page(request, session, actor, application_id, values=values, errors=errors, status_code=400)
    hours, tokens, months, errors = _grant(form)
    if errors and decision == "accept" and allocate:
        return _page(request, session, actor, application_id, values=values, errors=errors, status_code=400)
    # The amounts granted, as adjusted on the form; a form without them (an older page) grants what was asked.
    adjusted = any(name.startswith("grant_") for name in form)
    try:
        done = attempt(session, lambda: applications.decide(
            session=session, actor=actor, mailer=mailer, application_id=application_id,
            accept=decision == "accept", comment=comment, allocate=bool(allocate), invitations=conf,
            gpu_hours=hours if adjusted else None, tokens=tokens if adjusted else None,
            duration_months=months if adjusted else None))
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _page(request, session, actor, application_id, values=values,
                     errors={"decision": sentence(exc.message)}, status_code=exc.status)
    return _done(request, application_id, f"The application is {STATE_LABELS[done.state].lower()}; "
                                          "the applicant is told by e-mail.")


@router.post("/operator/applications/{application_id}/allocate")
def allocate(request: Request, session: DB, actor: PageOperator, mailer: MailerDep, conf: IdentityConf,
             application_id: str) -> Response:
    try:
        attempt(session, lambda: applications.allocate_accepted(session=session, actor=actor, mailer=mailer,
                                                                application_id=application_id, invitations=conf))
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _page(request, session, actor, application_id, errors={"allocate": sentence(exc.message)},
                     status_code=exc.status)
    return _done(request, application_id, "The application is allocated.")
