"""Portal pages of training: the events with seats left, one event, registering and cancelling; and for
operators, planning an event and changing one (``/training/new``, ``/training/{id}/edit``: the same
service calls as the API and the CLI; a mistake comes back beside its field with everything typed kept).

The list and an event's page are public (visitors see the published events and sign in to register).
A refused registration (deadline passed, event started, already registered) shows the event page
again with the reason, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.errors import JaifError
from jaif.identity.deps import PageOperator, PageUser, PageVisitor
from jaif.notify.deps import MailerDep
from jaif.training import forms, service
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash
from jaif.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/training")
def training_list(request: Request, session: DB, actor: PageVisitor, past: bool = False) -> Response:
    events = service.list_events(session=session, actor=actor, include_past=past)
    context = {"events": events, "past": past, "actor": actor}
    return TEMPLATES.TemplateResponse(request, "training/list.html", context)


def _event_page(request: Request, session, actor: Actor, event_id: str, *, error="", status_code=200) -> Response:
    event = service.get_event(session=session, actor=actor, event_id=event_id)
    registrations = (
        service.list_registrations(session=session, actor=actor, event_id=event_id) if actor.is_operator else []
    )
    started = event.starts_at <= datetime.now(UTC)
    context = {"event": event, "registrations": registrations, "error": error, "actor": actor, "started": started}
    return TEMPLATES.TemplateResponse(request, "training/detail.html", context, status_code=status_code)


def _form_page(request: Request, *, event_id: str | None, values: dict, errors: dict | None = None,
               status_code: int = 200) -> Response:
    return render(request, "training/form.html", status_code, section="training", event_id=event_id, values=values,
                  errors=errors or {})


@router.get("/training/new")
def new_event(request: Request, actor: PageOperator) -> Response:
    return _form_page(request, event_id=None, values=forms.blank())


@router.post("/training/new")
def create_event(request: Request, session: DB, actor: PageOperator, form: FormFields) -> Response:
    data, errors = forms.parse(form)
    if not errors:
        try:
            made = attempt(session, lambda: service.create_event(session=session, actor=actor, **data))
        except JaifError as exc:
            errors = {exc.param if exc.param in forms.FIELDS else "title": sentence(exc.message)}
        else:
            flash(request, f"{made.title} is planned.")
            return RedirectResponse(f"/training/{made.id}", status_code=303)
    return _form_page(request, event_id=None, values={**form, "is_published": bool(form.get("is_published"))},
                      errors=errors, status_code=400)


@router.get("/training/{event_id}/edit")
def edit_event(request: Request, event_id: str, session: DB, actor: PageOperator) -> Response:
    event = service.get_event(session=session, actor=actor, event_id=event_id)
    return _form_page(request, event_id=event.id, values=forms.values_of(event))


@router.post("/training/{event_id}/edit")
def change_event(request: Request, event_id: str, session: DB, actor: PageOperator, mailer: MailerDep,
                 form: FormFields) -> Response:
    service.get_event(session=session, actor=actor, event_id=event_id)  # 404 first
    data, errors = forms.parse(form)
    if not errors:
        try:
            saved = attempt(session, lambda: service.update_event(session=session, mailer=mailer, actor=actor,
                                                                  event_id=event_id, changes=data))
        except JaifError as exc:
            if exc.status == 404:
                raise
            errors = {exc.param if exc.param in forms.FIELDS else "title": sentence(exc.message)}
        else:
            flash(request, f"{saved.title} is saved.")
            return RedirectResponse(f"/training/{event_id}", status_code=303)
    return _form_page(request, event_id=event_id, values={**form, "is_published": bool(form.get("is_published"))},
                      errors=errors, status_code=400)


@router.get("/training/{event_id}")
def training_detail(request: Request, event_id: str, session: DB, actor: PageVisitor) -> Response:
    return _event_page(request, session, actor, event_id)


@router.post("/training/{event_id}/register")
def training_register(request: Request, event_id: str, session: DB, actor: PageUser, mailer: MailerDep) -> Response:
    try:
        done = service.register(session=session, mailer=mailer, actor=actor, event_id=event_id)
    except JaifError as exc:
        if exc.status == 404:
            raise
        message = exc.message[:1].upper() + exc.message[1:] + "."
        return _event_page(request, session, actor, event_id, error=message, status_code=exc.status)
    if done.status == "registered":
        flash(request, "You are registered. A confirmation is on its way by e-mail.")
    else:
        flash(request, f"The event is full: you are number {done.waitlist_position} on the waitlist.", "info")
    return RedirectResponse(f"/training/{event_id}", status_code=303)


@router.post("/training/{event_id}/cancel")
def training_cancel(request: Request, event_id: str, session: DB, actor: PageUser, mailer: MailerDep) -> Response:
    try:
        service.cancel(session=session, mailer=mailer, actor=actor, event_id=event_id)
    except JaifError as exc:
        if exc.status == 404 and "registration" not in exc.message:
            raise
        message = exc.message[:1].upper() + exc.message[1:] + "."
        return _event_page(request, session, actor, event_id, error=message, status_code=exc.status)
    flash(request, "Your registration is cancelled.")
    return RedirectResponse(f"/training/{event_id}", status_code=303)
