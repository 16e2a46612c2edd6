"""The application form, one step per page (applications/forms.py has the steps and their fields).

Every step saves the draft when it is sent (and a small script, /static/autosave.js, saves it through
the draft API while the applicant types). A field with a mistake comes back with its error next to it
and what was typed kept (400); the other fields of the step are saved all the same. *Save and continue*
also checks the step against what submitting needs (its required fields, the call's limits) and stays on
the step, with each problem beside its field, until it is met; *Save draft* does not. Submitting checks
the whole application; a refusal shows the step of the first problem, with every problem next to its
field.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access import directory
from jaif.access.schemas import Actor
from jaif.applications import forms, visibility
from jaif.applications import service as applications
from jaif.applications.checks import SubmissionRefused
from jaif.applications.schemas import ApplicationOut, DraftIn
from jaif.calls import service as calls
from jaif.calls.eligibility import Problem
from jaif.errors import JaifError, NotFound
from jaif.identity.deps import PageUser
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB, IdentityConf
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def _editable(session: Session, actor: Actor, application_id: str, step: str) -> ApplicationOut:
    if step not in forms.STEP_NAMES:
        raise NotFound(f"no step {step!r}; the steps are {', '.join(forms.STEP_NAMES)}")
    application = applications.get_application(session=session, actor=actor, application_id=application_id)
    return visibility.detail(application, actor)


def _page(request: Request, session: Session, actor: Actor, app: ApplicationOut, step: str, *,
          values: dict | None = None, errors: dict | None = None, others: list | None = None,
          status_code: int = 200) -> Response:
    call = calls.out(calls.get_call(session=session, ref=app.call_id))
    partitions = sorted(call.offered_gpu_hours)
    problems = []
    if step == "submit":
        found = applications.check(session=session, actor=actor, application_id=app.id)
        problems = [_shown(p) for p in found]
    return render(
        request, "applications/step.html", status_code, section="apply", app=app, call=call, step=step,
        steps=forms.STEPS, partitions=partitions,
        values=values if values is not None else forms.values_of(app, partitions),
        errors=errors or {}, others=others or [], problems=problems,
        # Only the organisations the applicant may see (their own, their projects'): never every customer.
        organisations=[(o.id, f"{o.name} ({o.country})") for o in directory.list_organisations(session=session,
                                                                                               actor=actor)],
    )


def _step_problems(session: Session, actor: Actor, application_id: str, step: str) -> dict[str, str]:
    """The saved draft's problems that belong to ``step`` (a required field empty, an amount beyond the
    call's limits), each beside its field: what submitting would refuse, told at the step itself."""
    found = applications.check(session=session, actor=actor, application_id=application_id)
    return _beside_fields([_shown(p) for p in found], step)


def _beside_fields(shown: list[dict[str, str]], step: str) -> dict[str, str]:
    """The messages of ``step``'s problems by form field (two about one field in one message)."""
    errors: dict[str, str] = {}
    for p in shown:
        if p["step"] == step:
            errors[p["field"]] = f"{errors[p['field']]} {p['message']}" if p["field"] in errors else p["message"]
    return errors


def _shown(problem: Problem) -> dict[str, str]:
    step = forms.STEP_OF.get(problem.field, "submit")
    return {"field": forms.form_name(problem.field), "step": step, "message": sentence(problem.message)}


@router.get("/applications/{application_id}/edit/{step}")
def edit(request: Request, session: DB, actor: PageUser, application_id: str, step: str) -> Response:
    app = _editable(session, actor, application_id, step)
    if "update" not in app.allowed_actions:
        return RedirectResponse(f"/applications/{application_id}", status_code=303)
    return _page(request, session, actor, app, step)


@router.post("/applications/{application_id}/edit/{step}")
def save(request: Request, session: DB, actor: PageUser, application_id: str, step: str, form: FormFields) -> Response:
    app = _editable(session, actor, application_id, step)
    if "update" not in app.allowed_actions:
        return RedirectResponse(f"/applications/{application_id}", status_code=303)
    call = calls.get_call(session=session, ref=app.call_id)
    parsed = forms.parse(step, form, partitions=sorted(call.offered_gpu_hours))
    if parsed.fields:
        try:
            attempt(session, lambda: applications.update_draft(
                session=session, actor=actor, application_id=application_id, data=DraftIn(**parsed.fields)))
        except JaifError as exc:
            if exc.status == 404:
                raise
            parsed.errors[forms.form_name(exc.param or "title")] = sentence(exc.message)
    if not parsed.errors and form.get("action") != "save":
        # *Save and continue* moves on only when this step is complete and within the call's limits; *Save
        # draft* keeps an unfinished step as it is.
        parsed.errors = _step_problems(session, actor, application_id, step)
    if parsed.errors:
        saved = visibility.detail(applications.get_application(session=session, actor=actor,
                                                          application_id=application_id), actor)
        return _page(request, session, actor, saved, step, values=form, errors=parsed.errors, status_code=400)
    target = step if form.get("action") == "save" else forms.next_step(step)
    flash(request, "Draft saved.", "info")
    return RedirectResponse(f"/applications/{application_id}/edit/{target}", status_code=303)


@router.post("/applications/{application_id}/submit")
def submit(request: Request, session: DB, actor: PageUser, mailer: MailerDep, conf: IdentityConf,
           application_id: str) -> Response:
    try:
        done = attempt(session, lambda: applications.submit(
            session=session, actor=actor, mailer=mailer, application_id=application_id, invitations=conf))
    except SubmissionRefused as exc:
        return _refused(request, session, actor, application_id, exc.problems)
    except JaifError as exc:
        if exc.status == 404:
            raise
        app = _editable(session, actor, application_id, "submit")
        return _page(request, session, actor, app, "submit", errors={"submit": sentence(exc.message)},
                     status_code=exc.status)
    waiting = applications.automatic_grant_problem(session, done) if done.state == "submitted" else None
    if done.state == "allocated" and done.project is not None:
        flash(request, f"Your application is accepted, and project {done.project.name} has its allocations.")
    elif waiting is not None and done.call.review_mode == "automatic":
        flash(request, f"Your application is submitted, and waits: {waiting}.", "warning")
    else:
        flash(request, "Your application is submitted. We will tell you by e-mail when it is decided.")
    return RedirectResponse(f"/applications/{application_id}", status_code=303)


@router.post("/applications/{application_id}/automatic-review")
def retry_automatic_review(request: Request, session: DB, actor: PageUser, mailer: MailerDep, conf: IdentityConf,
                           application_id: str) -> Response:
    """*Ask again*: the automatic review of a submitted application that waited."""
    try:
        done = attempt(session, lambda: applications.retry_automatic_review(
            session=session, actor=actor, mailer=mailer, application_id=application_id, invitations=conf))
    except JaifError as exc:
        if exc.status == 404:
            raise
        flash(request, sentence(exc.message), "error")
        return RedirectResponse(f"/applications/{application_id}", status_code=303)
    if done.state == "allocated" and done.project is not None:
        flash(request, f"Your application is accepted, and project {done.project.name} has its allocations.")
    else:
        flash(request, "Not yet: the history below says what is missing.", "warning")
    return RedirectResponse(f"/applications/{application_id}", status_code=303)


def _refused(request: Request, session: Session, actor: Actor, application_id: str,
             problems: list[Problem]) -> Response:
    """The step of the first problem, with the problems of that step next to their fields and the others
    listed above the form with links to their steps."""
    shown = [_shown(p) for p in problems]
    step = shown[0]["step"]
    errors = _beside_fields(shown, step)
    others = [p for p in shown if p["step"] != step]
    app = _editable(session, actor, application_id, step)
    return _page(request, session, actor, app, step, errors=errors, others=others, status_code=400)
