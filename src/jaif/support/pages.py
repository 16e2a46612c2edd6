"""Portal pages of the support desk: the list, a new request, a request with its replies.

Forms post back to the page; bad input renders the same page with the error next to the field and
what was typed kept (status 400), never a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.errors import JaifError
from jaif.identity.deps import PageUser
from jaif.notify.deps import MailerDep
from jaif.support import service
from jaif.support.models import SupportCategory, SupportStatus
from jaif.web.deps import DB
from jaif.web.forms import FormStr
from jaif.web.session import flash
from jaif.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)

CATEGORY_LABELS = {
    SupportCategory.onboarding: "Getting started",
    SupportCategory.porting: "Porting code to the machine",
    SupportCategory.scaling: "Scaling and performance",
    SupportCategory.fine_tuning: "Fine-tuning models",
    SupportCategory.inference: "Inference and the API",
    SupportCategory.data: "Data and data protection",
    SupportCategory.ai_act: "AI Act and regulation",
    SupportCategory.other: "Something else",
}
STATUS_LABELS = {
    SupportStatus.open: "Open",
    SupportStatus.in_progress: "In progress",
    SupportStatus.waiting_for_user: "Waiting for you",
    SupportStatus.resolved: "Resolved",
    SupportStatus.closed: "Closed",
}


def _sentence(message: str) -> str:
    message = message.strip()
    return (message[:1].upper() + message[1:]).rstrip(".") + "."


def _errors(exc: JaifError, default: str) -> dict[str, str]:
    return {exc.param or default: _sentence(exc.message)}


def _status_labels(actor: Actor | None) -> dict[SupportStatus, str]:
    if actor is not None and actor.is_operator:
        return STATUS_LABELS | {SupportStatus.waiting_for_user: "Waiting for the requester"}
    return STATUS_LABELS


def _render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    context |= {"category_labels": CATEGORY_LABELS, "status_labels": _status_labels(context.get("actor"))}
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


@router.get("/support")
def support_list(
    request: Request,
    session: DB,
    actor: PageUser,
    status: Annotated[str, Query(max_length=20)] = "",
    category: Annotated[str, Query(max_length=20)] = "",
    assigned: Annotated[str, Query(max_length=4)] = "",
) -> Response:
    assignee_id = None
    if actor.is_operator and assigned in ("me", "none"):
        assignee_id = actor.user_id if assigned == "me" else "none"
    requests = service.list_requests(
        session=session,
        actor=actor,
        status=status if status in STATUS_LABELS else None,
        category=category if category in CATEGORY_LABELS else None,
        assignee_id=assignee_id,
    )
    chosen = {"status": status, "category": category, "assigned": assigned}
    return _render(request, "support/list.html", requests=requests, chosen=chosen, actor=actor)


def _new_page(request: Request, session, actor: Actor, *, values=None, errors=None, status_code=200) -> Response:
    projects = service.project_choices(session=session, actor=actor)
    return _render(
        request,
        "support/new.html",
        status_code,
        projects=projects,
        values=values or {"category": "", "project_id": "", "subject": "", "body": ""},
        errors=errors or {},
    )


@router.get("/support/new")
def support_new(request: Request, session: DB, actor: PageUser) -> Response:
    return _new_page(request, session, actor)


@router.post("/support/new")
def support_create(
    request: Request,
    session: DB,
    actor: PageUser,
    mailer: MailerDep,
    category: FormStr = "",
    project_id: FormStr = "",
    subject: FormStr = "",
    body: FormStr = "",
) -> Response:
    values = {"category": category, "project_id": project_id, "subject": subject, "body": body}
    errors = {}
    if category not in CATEGORY_LABELS:
        errors["category"] = "Choose what you need help with."
    if not subject.strip():
        errors["subject"] = "Give your request a subject."
    if not body.strip():
        errors["body"] = "Describe what you need help with."
    if not errors:
        try:
            created = service.create_request(
                session=session,
                mailer=mailer,
                actor=actor,
                category=category,
                subject=subject,
                body=body,
                project_id=project_id or None,
            )
        except JaifError as exc:
            errors = _errors(exc, "subject")
        else:
            flash(request, "Your request is with the support team. We will answer here and by e-mail.")
            return RedirectResponse(f"/support/{created.id}", status_code=303)
    return _new_page(request, session, actor, values=values, errors=errors, status_code=400)


def _detail_page(
    request: Request, session, actor: Actor, request_id: str, *, reply=None, errors=None, status_code=200
) -> Response:
    detail = service.get_request(session=session, actor=actor, request_id=request_id)
    operators = service.list_operators(session=session) if actor.is_operator else []
    return _render(
        request,
        "support/detail.html",
        status_code,
        item=detail,
        actor=actor,
        operators=operators,
        reply=reply or {"body": "", "internal": False},
        errors=errors or {},
    )


@router.get("/support/{request_id}")
def support_detail(request: Request, request_id: str, session: DB, actor: PageUser) -> Response:
    return _detail_page(request, session, actor, request_id)


@router.post("/support/{request_id}/replies")
def support_reply(
    request: Request,
    request_id: str,
    session: DB,
    actor: PageUser,
    mailer: MailerDep,
    body: FormStr = "",
    internal: FormStr = "",
) -> Response:
    kept = {"body": body, "internal": bool(internal)}
    if not body.strip():
        return _detail_page(
            request, session, actor, request_id, reply=kept, errors={"body": "Write a reply first."}, status_code=400
        )
    try:
        service.add_reply(
            session=session, mailer=mailer, actor=actor, request_id=request_id, body=body, internal=bool(internal)
        )
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _detail_page(
            request, session, actor, request_id, reply=kept, errors=_errors(exc, "body"), status_code=exc.status
        )
    flash(request, "Internal note added." if internal else "Your reply is sent.")
    return RedirectResponse(f"/support/{request_id}#thread-end", status_code=303)


@router.post("/support/{request_id}/status")
def support_status(
    request: Request, request_id: str, session: DB, actor: PageUser, mailer: MailerDep, status: FormStr = ""
) -> Response:
    try:
        done = service.set_status(session=session, mailer=mailer, actor=actor, request_id=request_id, status=status)
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _detail_page(request, session, actor, request_id, errors=_errors(exc, "status"), status_code=exc.status)
    flash(request, f"The request is now {_status_labels(actor)[done.status].lower()}.")
    return RedirectResponse(f"/support/{request_id}", status_code=303)


@router.post("/support/{request_id}/assign")
def support_assign(
    request: Request, request_id: str, session: DB, actor: PageUser, mailer: MailerDep, assignee_id: FormStr = ""
) -> Response:
    try:
        done = service.assign(
            session=session, mailer=mailer, actor=actor, request_id=request_id, assignee_id=assignee_id or None
        )
    except JaifError as exc:
        if exc.status == 404:
            raise
        return _detail_page(
            request, session, actor, request_id, errors=_errors(exc, "assignee_id"), status_code=exc.status
        )
    flash(request, f"Assigned to {done.assignee.name or done.assignee.email}." if done.assignee else "Unassigned.")
    return RedirectResponse(f"/support/{request_id}", status_code=303)
