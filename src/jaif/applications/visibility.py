"""What each viewer sees of an application.

- Operators: everything, reviewer identities included.
- The applicant: their application and its log; the reviews (stage, score, comment) once it is
  decided, never who wrote them, and who acted only as 'you', 'operator' or 'automatic'.
- A reviewer: the applications assigned to them, with their own reviews only.
"""

from __future__ import annotations

from jaif.access.schemas import Actor
from jaif.applications import time_to_access
from jaif.applications.models import Application, ApplicationEvent, ApplicationState, Review
from jaif.applications.schemas import (
    ApplicationOut,
    ApplicationSummary,
    EventOut,
    OrganisationProposal,
    ReviewOut,
)
from jaif.applications.states import DECIDED, UNDER_REVIEW, refusal
from jaif.calls.models import ReviewMode

_ORDER: dict[str, int] = {state: n for n, state in enumerate(ApplicationState)}


def summary(application: Application) -> ApplicationSummary:
    return ApplicationSummary(
        id=application.id,
        call_id=application.call_id,
        call_slug=application.call.slug,
        kind=application.kind,
        title=application.title,
        applicant_email=application.applicant.email,
        organisation_name=(
            application.organisation.name
            if application.organisation is not None
            else (application.organisation_proposal or {}).get("name")
        ),
        state=application.state,
        created_at=application.created_at,
        updated_at=application.updated_at,
        submitted_at=application.submitted_at,
        allocated_at=application.allocated_at,
    )


def summary_of_row(row) -> ApplicationSummary:
    """``summary`` of a row of ``service.application_rows`` (no objects loaded)."""
    organisation = row.organisation_name
    if organisation is None:
        organisation = (row.organisation_proposal or {}).get("name")
    return ApplicationSummary(
        id=row.id, call_id=row.call_id, call_slug=row.call_slug, kind=row.kind, title=row.title,
        applicant_email=row.applicant_email, organisation_name=organisation, state=row.state,
        created_at=row.created_at, updated_at=row.updated_at, submitted_at=row.submitted_at,
        allocated_at=row.allocated_at,
    )


def _actor_label(event: ApplicationEvent, viewer: Actor) -> str:
    if event.actor_id is None:
        return "automatic"
    if event.actor_id == viewer.user_id:
        return "you"
    if viewer.is_operator and event.actor is not None:
        return event.actor.email
    return "operator"


def review_for_operator(review: Review) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        application_id=review.application_id,
        application_title=review.application.title,
        reviewer_email=review.reviewer.email,
        stage=review.stage,
        score=review.score,
        comment=review.comment,
        assigned_at=review.assigned_at,
        submitted_at=review.submitted_at,
    )


def review_for_reviewer(review: Review) -> ReviewOut:
    return review_for_operator(review)


def review_for_applicant(review: Review) -> ReviewOut:
    return ReviewOut(stage=review.stage, score=review.score, comment=review.comment, submitted_at=review.submitted_at)


def _reviews(application: Application, viewer: Actor) -> list[ReviewOut]:
    reviews = sorted(application.reviews, key=lambda r: (r.stage != "technical", r.submitted_at or r.assigned_at))
    if viewer.is_operator:
        return [review_for_operator(r) for r in reviews]
    if viewer.user_id == application.applicant_id:
        if application.state not in DECIDED:
            return []
        return [review_for_applicant(r) for r in reviews if r.submitted_at is not None]
    return [review_for_reviewer(r) for r in reviews if r.reviewer_id == viewer.user_id]


def allowed_actions(application: Application, viewer: Actor) -> list[str]:
    """The actions the portal may offer ``viewer`` on ``application`` now."""
    state, mode = application.state, application.call.review_mode
    actions = []
    if viewer.user_id == application.applicant_id:
        if state == ApplicationState.draft:
            actions += ["update", "submit", "delete"]
        if refusal(state, ApplicationState.withdrawn, mode) is None:
            actions.append("withdraw")
        if state == ApplicationState.submitted and mode == ReviewMode.automatic:
            actions.append("retry_automatic_review")
    if viewer.is_operator:
        for stage in (ApplicationState.technical_review, ApplicationState.peer_review):
            if refusal(state, stage, mode) is None:
                actions.append(f"move_to_{stage}")
        if state in UNDER_REVIEW:
            actions.append("assign_reviewer")
        if any(refusal(state, to, mode) is None for to in (ApplicationState.accepted, ApplicationState.rejected)):
            actions.append("decide")
        if state == ApplicationState.accepted:
            actions.append("allocate")
    if any(r.reviewer_id == viewer.user_id for r in application.reviews) and state in UNDER_REVIEW:
        actions.append("review")
    return actions


def cutoff(application: Application) -> str | None:
    call = application.call
    if call.review_mode != ReviewMode.peer or not call.cutoffs or application.submitted_at is None:
        return None
    upcoming = sorted(c for c in call.cutoffs if c >= application.submitted_at.date().isoformat())
    return upcoming[0] if upcoming else None


def detail(application: Application, viewer: Actor) -> ApplicationOut:
    events = sorted(application.events, key=lambda e: (e.created_at, _ORDER.get(e.to_state, 99)))
    proposal = application.organisation_proposal
    return ApplicationOut(
        **summary(application).model_dump(),
        call_name=application.call.name,
        review_mode=application.call.review_mode,
        project_id=application.project_id,
        project_name=application.project.name if application.project is not None else application.project_name,
        abstract=application.abstract,
        domain=application.domain,
        organisation_id=application.organisation_id,
        organisation_proposal=OrganisationProposal(**proposal) if proposal else None,
        team=list(application.team),
        requested_gpu_hours=dict(application.requested_gpu_hours),
        requested_tokens=application.requested_tokens,
        duration_months=application.duration_months,
        datasets=application.datasets,
        personal_data=application.personal_data,
        ai_act_risk=application.ai_act_risk,
        ai_act_notes=application.ai_act_notes,
        decision_comment=application.decision_comment if application.state in DECIDED else "",
        decided_at=application.decided_at,
        cutoff=cutoff(application),
        time_to_access=time_to_access.for_application(application),
        events=[
            EventOut(from_state=e.from_state, to_state=e.to_state, actor=_actor_label(e, viewer), note=e.note,
                     created_at=e.created_at)
            for e in events
        ],
        reviews=_reviews(application, viewer),
        allowed_actions=allowed_actions(application, viewer),
    )
