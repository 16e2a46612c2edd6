"""Applications: drafts that are never lost, submission, the decision, and the allocation it leads to.

Who may do what (every function takes ``actor``):
- anyone signed in makes drafts; only the applicant changes, submits, deletes (drafts) or withdraws;
- a user sees their own applications, a reviewer also those assigned to them, operators all; for
  anyone else an application does not exist (NotFound, so ids leak nothing);
- operators move applications into review, decide, and allocate.

Playground-style calls with automatic review accept and allocate an eligible submission at once
(first come, first served: while the call has resources left; else an operator decides), but only for
an applicant whose e-mail address is verified and whose membership of the application's organisation
is confirmed (access/membership.py). Otherwise the application waits, submitted, with a note that says
what is missing; once it is done the applicant asks again (``retry_automatic_review``), or an operator
decides meanwhile.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Row, false, func, or_, select, true
from sqlalchemy.orm import Session, selectinload

from jaif.access import membership
from jaif.access import service as access
from jaif.access.models import Organisation, User
from jaif.access.schemas import Actor
from jaif.access.visibility import is_pi
from jaif.applications import checks, emails, states
from jaif.applications.grant import Grant, capacity_problem, grant
from jaif.applications.models import Application, ApplicationEvent, ApplicationKind, ApplicationState, Review
from jaif.applications.schemas import DraftIn
from jaif.calls import service as calls
from jaif.calls.eligibility import Problem
from jaif.calls.models import AccessCall, ReviewMode
from jaif.config import IdentitySettings
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.identity import team
from jaif.notify.mail import Mailer

S = ApplicationState
_ID = re.compile(r"^[0-9a-f]{32}$")


def visible(actor: Actor) -> ColumnElement[bool]:
    if actor.is_operator:
        return true()
    if actor.user_id is None:
        return false()
    assigned = select(Review.application_id).where(Review.reviewer_id == actor.user_id)
    return or_(Application.applicant_id == actor.user_id, Application.id.in_(assigned))


def get_application(*, session: Session, actor: Actor, application_id: str, lock: bool = False) -> Application:
    found = None
    if _ID.match(application_id or ""):
        query = (
            select(Application)
            .where(Application.id == application_id, visible(actor))
            .options(selectinload(Application.events).selectinload(ApplicationEvent.actor),
                     selectinload(Application.reviews).selectinload(Review.reviewer))
        )
        found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFound(f"no application {application_id!r}", param="id")
    return found


def _listed(session: Session, actor: Actor, *, call: str | None, state: str | None, mine: bool):
    """The WHERE clauses of a list of applications, shared by the list and its count."""
    where = [visible(actor)]
    if mine:
        where.append(Application.applicant_id == actor.user_id)
    if call is not None:
        where.append(Application.call_id == calls.get_call(session=session, ref=call).id)
    if state is not None:
        if state not in S.__members__:
            raise InvalidRequest(f"state must be one of {', '.join(S.__members__)}", param="state")
        where.append(Application.state == state)
    return where


def list_applications(
    *, session: Session, actor: Actor, call: str | None = None, state: str | None = None, limit: int = 500,
    mine: bool = False, offset: int = 0,
) -> list[Application]:
    """Applications ``actor`` may see (``mine``: only those they made), most recently changed first; a page
    of ``limit`` from ``offset``. Call, applicant and organisation come loaded (lists show them)."""
    query = (
        select(Application)
        .where(*_listed(session, actor, call=call, state=state, mine=mine))
        .options(selectinload(Application.call), selectinload(Application.applicant),
                 selectinload(Application.organisation))  # after the page is cut, for its rows only
        .order_by(Application.updated_at.desc(), Application.id.desc())  # as ix_applications_(state_)updated
        .limit(limit)
        .offset(max(0, offset))
    )
    return list(session.scalars(query))


def application_rows(
    *, session: Session, actor: Actor, call: str | None = None, state: str | None = None, limit: int = 50,
    mine: bool = False, offset: int = 0,
) -> list[Row]:
    """The page of ``list_applications`` as plain rows for a table or a summary, in one query and without
    objects: id, call_id, call_slug, call_name, kind, title, applicant_email, organisation_name (None
    without one), organisation_proposal, state, created_at, updated_at, submitted_at, allocated_at. The page
    of ids is cut first (from the list's index alone), then joined for its rows."""
    page = (
        select(Application.id)
        .where(*_listed(session, actor, call=call, state=state, mine=mine))
        .order_by(Application.updated_at.desc(), Application.id.desc())
        .limit(limit)
        .offset(max(0, offset))
        .subquery("page")
    )
    query = (
        select(Application.id, Application.call_id, AccessCall.slug.label("call_slug"),
               AccessCall.name.label("call_name"), Application.kind, Application.title,
               User.email.label("applicant_email"), Organisation.name.label("organisation_name"),
               Application.organisation_proposal, Application.state, Application.created_at,
               Application.updated_at, Application.submitted_at, Application.allocated_at)
        .join(page, page.c.id == Application.id)
        .join(AccessCall, AccessCall.id == Application.call_id)
        .join(User, User.id == Application.applicant_id)
        .outerjoin(Organisation, Organisation.id == Application.organisation_id)
        .order_by(Application.updated_at.desc(), Application.id.desc())
    )
    return list(session.execute(query))


def count_applications(
    *, session: Session, actor: Actor, call: str | None = None, state: str | None = None, mine: bool = False
) -> int:
    """How many applications ``list_applications`` pages through with the same filters."""
    where = _listed(session, actor, call=call, state=state, mine=mine)
    return session.scalar(select(func.count()).select_from(Application).where(*where)) or 0


def _own(session: Session, actor: Actor, application_id: str) -> Application:
    application = get_application(session=session, actor=actor, application_id=application_id, lock=True)
    if application.applicant_id != actor.user_id:
        raise Forbidden("Only the applicant may do this.")
    return application


def _apply(session: Session, actor: Actor, application: Application, data: DraftIn) -> None:
    values = data.model_dump(exclude_unset=True)
    if "call_id" in values:
        if values["call_id"] is None:
            raise InvalidRequest("an application belongs to a call", param="call_id")
        values["call_id"] = calls.get_call(session=session, ref=values["call_id"]).id
    if "organisation" in values:
        proposal = values.pop("organisation")
        application.organisation_proposal = dict(proposal) if proposal else None
        if proposal:
            application.organisation_id = None
    if values.get("organisation_id") is not None:
        if session.get(Organisation, values["organisation_id"]) is None:
            raise InvalidRequest("no such organisation; name a new one under 'organisation'", param="organisation_id")
        application.organisation_proposal = None
    if "project_id" in values and values["project_id"] is not None:
        if not is_pi(session, user_id=actor.user_id, project_id=values["project_id"]):
            raise InvalidRequest("you may renew or top up only projects you lead as PI", param="project_id")
    for key in ("title", "abstract", "domain", "datasets", "ai_act_notes", "project_name"):
        if key in values and values[key] is None:
            values[key] = ""
    if "team" in values:
        values["team"] = [e.strip() for e in values["team"] or [] if e.strip()]
    if "requested_gpu_hours" in values:
        values["requested_gpu_hours"] = {k.strip(): float(v) for k, v in (values["requested_gpu_hours"] or {}).items()}
    if "requested_tokens" in values and values["requested_tokens"] is None:
        values["requested_tokens"] = 0
    if "personal_data" in values and values["personal_data"] is None:
        values["personal_data"] = False
    if "kind" in values and values["kind"] is None:
        values["kind"] = ApplicationKind.new
    for key, value in values.items():
        setattr(application, key, value)
    if application.kind == ApplicationKind.new:
        application.project_id = None
    application.updated_at = utcnow()


def create_draft(*, session: Session, actor: Actor, data: DraftIn) -> Application:
    """A new draft, saved at once; any field may be filled in later (``update_draft``)."""
    if actor.user_id is None:
        raise Forbidden("Applications are made by a signed-in user.")
    if data.call_id is None:
        raise InvalidRequest("choose the call to apply to", param="call_id")
    user = session.get(User, actor.user_id)
    if user is None:
        raise Forbidden("Applications are made by a signed-in user.")
    application = Application(
        call_id=calls.get_call(session=session, ref=data.call_id).id,
        applicant_id=user.id,
        organisation_id=user.organisation_id,
        team=[],
        requested_gpu_hours={},
    )
    session.add(application)
    session.flush()
    _apply(session, actor, application, data)
    states.record_created(session, application, actor_id=actor.user_id)
    session.flush()
    return application


def update_draft(*, session: Session, actor: Actor, application_id: str, data: DraftIn) -> Application:
    """Save the fields given in ``data`` (autosave: any subset, at any step); only drafts change."""
    application = _own(session, actor, application_id)
    if application.state != S.draft:
        raise Conflict(f"the application is {states.label(application.state)}; only drafts can be changed")
    _apply(session, actor, application, data)
    session.flush()
    return application


def delete_draft(*, session: Session, actor: Actor, application_id: str) -> None:
    application = _own(session, actor, application_id)
    if application.state != S.draft:
        raise Conflict("only drafts can be deleted; withdraw a submitted application instead")
    session.delete(application)
    session.flush()


def check(*, session: Session, actor: Actor, application_id: str) -> list[Problem]:
    """What stands in the way of submitting, field by field (for the form, while the applicant types)."""
    application = get_application(session=session, actor=actor, application_id=application_id)
    return checks.problems(session, application, now=utcnow())


def _resolve_organisation(session: Session, application: Application) -> None:
    if application.kind != ApplicationKind.new and application.project is not None:
        application.organisation_id = application.project.organisation_id
    elif application.organisation_id is None and application.organisation_proposal:
        proposal = application.organisation_proposal
        org = checks.find_organisation(session, proposal["name"]) or access.create_organisation(
            session=session, name=proposal["name"].strip(), sector=proposal["sector"], country=proposal["country"]
        )
        application.organisation_id = org.id
        application.organisation_proposal = None
    if application.applicant.organisation_id is None and application.organisation_id is not None:
        membership.join(session, user=application.applicant, organisation_id=application.organisation_id)
    session.flush()


def submit(*, session: Session, actor: Actor, mailer: Mailer | None, application_id: str,
           invitations: IdentitySettings | None = None) -> Application:
    """Submit a complete, eligible draft, or refuse with every problem (SubmissionRefused, 400).
    ``invitations``: with it, team members without an account are invited when access is granted."""
    application = _own(session, actor, application_id)
    if application.state != S.draft:
        raise Conflict(f"the application is {states.label(application.state)} already")
    found = checks.problems(session, application, now=utcnow())
    if found:
        raise checks.SubmissionRefused(found)
    _resolve_organisation(session, application)
    states.move(session, application, S.submitted, actor_id=actor.user_id)
    emails.submitted(session, mailer, application)
    if application.call.review_mode == ReviewMode.automatic:
        _automatic_review(session, mailer, application, invitations)
    return application


def automatic_grant_problem(session: Session, application: Application) -> str | None:
    """Why an automatic review may not grant ``application`` (for the applicant), or None if it may:
    the applicant's address must be verified and their membership of its organisation confirmed."""
    applicant = application.applicant
    if applicant.email_verified_at is None:
        return (f"the applicant's e-mail address {applicant.email} is not verified yet: open the link we sent "
                "(or send a new one from the account page), then ask for the automatic review again")
    if not membership.is_confirmed_member(session, user=applicant, organisation_id=application.organisation_id):
        name = application.organisation.name if application.organisation else "the organisation"
        return (f"the applicant's membership of {name} is not confirmed yet: a confirmed member of {name} "
                "or an operator confirms it (a verified address in a domain it registered does so by "
                "itself), then ask for the automatic review again")
    return None


def _automatic_review(session: Session, mailer: Mailer | None, application: Application,
                      invitations: IdentitySettings | None = None) -> None:
    waiting = automatic_grant_problem(session, application)
    if waiting is not None:
        states.note(session, application, f"not accepted automatically: {waiting}; or an operator decides")
        return
    wanted = Grant.requested(application)
    short = capacity_problem(session, application, wanted)
    if short is not None:
        states.note(session, application, f"not accepted automatically: {short}; an operator decides")
        return
    states.move(session, application, S.accepted, actor_id=None, note="automatic review: eligible and complete")
    _allocate(session, mailer, application, wanted, actor_id=None, invitations=invitations)


def retry_automatic_review(*, session: Session, actor: Actor, mailer: Mailer | None,
                           application_id: str, invitations: IdentitySettings | None = None) -> Application:
    """The applicant asks again for the automatic review of a submitted application that waited (say,
    for a verified address or a confirmed membership): granted now if it is still eligible and the call
    still has the resources; else it waits with a note that says why."""
    application = _own(session, actor, application_id)
    if application.state != S.submitted or application.call.review_mode != ReviewMode.automatic:
        raise Conflict("only a submitted application to a call with automatic review waits for it; "
                       f"this one is {states.label(application.state)}")
    found = checks.problems(session, application, now=utcnow())
    if found:
        raise checks.SubmissionRefused(found)
    _automatic_review(session, mailer, application, invitations)
    return application


def _allocate(session: Session, mailer: Mailer | None, application: Application, wanted: Grant,
              *, actor_id: str | None, invitations: IdentitySettings | None = None) -> None:
    made = grant(session, application, wanted, actor_id=actor_id)
    note = f"project {made.project.name}: {len(made.allocations)} allocation(s)"
    invited = False
    if made.missing_members:
        # The form promises that the team named in it is invited when access is granted: by the applicant,
        # now the project's principal investigator, to join as members (identity/team.py).
        if invitations is not None and mailer is not None:
            applicant = application.applicant
            inviter = Actor(user_id=applicant.id, email=applicant.email, role=applicant.role)
            for email in made.missing_members:
                team.invite(session=session, actor=inviter, project_id=made.project.id, email=email, role="member",
                            settings=invitations, mailer=mailer)
            invited = True
        note += ("; team members invited: " if invited else "; team members without an account: ") + ", ".join(
            made.missing_members)
    states.move(session, application, S.allocated, actor_id=actor_id, note=note)
    session.refresh(application, ["project"])
    emails.allocated(session, mailer, application, made.allocations, made.missing_members, invited=invited)


def withdraw(*, session: Session, actor: Actor, application_id: str) -> Application:
    """The applicant takes back a draft or an application not yet decided."""
    application = _own(session, actor, application_id)
    states.move(session, application, S.withdrawn, actor_id=actor.user_id)
    return application


def _operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise Forbidden("Only operators may do this.")


def start_stage(*, session: Session, actor: Actor, application_id: str, stage: str, note: str = "") -> Application:
    """Move a submitted application into technical review, or on into peer review (operators)."""
    _operator(actor)
    if stage not in (S.technical_review, S.peer_review):
        raise InvalidRequest("stage must be technical_review or peer_review", param="stage")
    application = get_application(session=session, actor=actor, application_id=application_id, lock=True)
    states.move(session, application, stage, actor_id=actor.user_id, note=note)
    return application


def decide(
    *,
    session: Session,
    actor: Actor,
    mailer: Mailer | None,
    application_id: str,
    accept: bool,
    comment: str = "",
    allocate: bool = True,
    gpu_hours: dict[str, float] | None = None,
    tokens: int | None = None,
    duration_months: int | None = None,
    invitations: IdentitySettings | None = None,
) -> Application:
    """The operator accepts (and, unless told not to, allocates at once) or rejects; the applicant is told,
    with the reviewers' comments and no reviewer names."""
    _operator(actor)
    application = get_application(session=session, actor=actor, application_id=application_id, lock=True)
    application.decision_comment = comment.strip()
    states.move(session, application, S.accepted if accept else S.rejected, actor_id=actor.user_id)
    emails.decided(session, mailer, application, list(application.reviews))
    if accept and allocate:
        wanted = Grant.requested(application, gpu_hours=gpu_hours, tokens=tokens, duration_months=duration_months)
        _allocate(session, mailer, application, wanted, actor_id=actor.user_id, invitations=invitations)
    return application


def allocate_accepted(
    *,
    session: Session,
    actor: Actor,
    mailer: Mailer | None,
    application_id: str,
    gpu_hours: dict[str, float] | None = None,
    tokens: int | None = None,
    duration_months: int | None = None,
    invitations: IdentitySettings | None = None,
) -> Application:
    """Allocate an application that was accepted without allocating (operators)."""
    _operator(actor)
    application = get_application(session=session, actor=actor, application_id=application_id, lock=True)
    if application.state != S.accepted:
        raise Conflict(f"only accepted applications are allocated; this one is {states.label(application.state)}")
    wanted = Grant.requested(application, gpu_hours=gpu_hours, tokens=tokens, duration_months=duration_months)
    _allocate(session, mailer, application, wanted, actor_id=actor.user_id, invitations=invitations)
    return application


REQUEST_KINDS = {ApplicationKind.renewal: "Renewal", ApplicationKind.top_up: "Top-up"}


def request_more(*, session: Session, actor: Actor, project_id: str, kind: str, call: str) -> Application:
    """A PI's renewal or top-up of their project: a new draft of that kind in ``call``, titled after the
    project, to fill in and submit as any application (the portal's button on the project page; the API
    makes the same with ``kind`` and ``project_id``). Someone not in the project finds no such project
    (404); a member who is not its PI, an operator included, is refused (403)."""
    project = team.require_member(session=session, actor=actor, project_id=project_id)
    if not is_pi(session, user_id=actor.user_id, project_id=project.id):
        raise Forbidden("only the project's PI may ask for a renewal or a top-up")
    if kind not in REQUEST_KINDS:
        raise InvalidRequest("ask for a renewal or a top-up", param="kind")
    if not call or len(call) > 100:
        raise InvalidRequest("choose the call to apply to", param="call_id")
    title = f"{REQUEST_KINDS[ApplicationKind(kind)]} of project {project.name}"
    return create_draft(session=session, actor=actor,
                        data=DraftIn(call_id=call, kind=kind, project_id=project.id, title=title))  # type: ignore[arg-type]
