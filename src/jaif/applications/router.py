"""/api/v1/applications and /api/v1/reviews: the application flow for scripts, with the portal's permissions.

Applicants see their own applications, reviewers those assigned to them, operators all; the applicant
sees the reviewers' comments once decided, never who wrote them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from jaif.applications import reviews, service, visibility
from jaif.applications.schemas import (
    ApplicationOut,
    ApplicationSummary,
    AssignIn,
    DecisionIn,
    DeclineIn,
    DraftIn,
    GrantIn,
    Problem,
    ReviewIn,
    ReviewOut,
    StageIn,
    State,
)
from jaif.identity.deps import CurrentActor, Operator
from jaif.notify.deps import MailerDep
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB, IdentityConf

router = APIRouter(prefix="/api/v1/applications", tags=["applications"])
reviews_router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])
Id = Annotated[str, Path(description="The application's id.")]


def _detail(session, actor, application_id: str) -> ApplicationOut:
    application = service.get_application(session=session, actor=actor, application_id=application_id)
    return visibility.detail(application, actor)


@router.get("", response_model=list[ApplicationSummary], summary="Applications you may see",
            responses={**PAGED, **errors(400, 401, 404)})
def list_applications(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    call: Annotated[str | None, Query(max_length=100, description="A call's id or slug.")] = None,
    state: State | None = None,
    mine: Annotated[bool, Query(description="Only the applications you made.")] = False,
) -> list[ApplicationSummary]:
    """Yours, and those assigned to you for review; operators see all. Most recently changed first."""
    filters: dict[str, Any] = {"call": call, "state": state, "mine": mine}
    found = service.application_rows(session=session, actor=actor, **filters, limit=page.limit, offset=page.offset)
    api_paging.send(request, response, page, service.count_applications(session=session, actor=actor, **filters))
    return [visibility.summary_of_row(row) for row in found]


@router.post("", response_model=ApplicationOut, status_code=201, summary="Start a draft",
             responses=errors(400, 401, 403, 404))
def create_draft(body: DraftIn, session: DB, actor: CurrentActor) -> ApplicationOut:
    """``call_id`` is required; every other field may come now or later (PATCH)."""
    application = service.create_draft(session=session, actor=actor, data=body)
    return visibility.detail(application, actor)


@router.get("/{application_id}", response_model=ApplicationOut, summary="One application",
            responses=errors(401, 404))
def get_application(application_id: Id, session: DB, actor: CurrentActor) -> ApplicationOut:
    return _detail(session, actor, application_id)


@router.patch("/{application_id}", response_model=ApplicationOut, summary="Save fields of a draft (autosave)",
              responses=errors(400, 401, 403, 404, 409))
def update_draft(application_id: Id, body: DraftIn, session: DB, actor: CurrentActor) -> ApplicationOut:
    """Any subset of the fields; those left out keep their value."""
    service.update_draft(session=session, actor=actor, application_id=application_id, data=body)
    return _detail(session, actor, application_id)


@router.delete("/{application_id}", status_code=204, summary="Delete a draft", responses=errors(401, 403, 404, 409))
def delete_draft(application_id: Id, session: DB, actor: CurrentActor) -> Response:
    service.delete_draft(session=session, actor=actor, application_id=application_id)
    return Response(status_code=204)


@router.get("/{application_id}/problems", response_model=list[Problem],
            summary="What stands in the way of submitting", responses=errors(401, 404))
def problems(application_id: Id, session: DB, actor: CurrentActor) -> list[Problem]:
    """Field by field, as submission would refuse; empty when the draft may be submitted."""
    found = service.check(session=session, actor=actor, application_id=application_id)
    return [Problem(field=p.field, message=p.message) for p in found]


@router.post("/{application_id}/submit", response_model=ApplicationOut, summary="Submit a draft",
             responses=errors(400, 401, 403, 404, 409))
def submit(application_id: Id, session: DB, actor: CurrentActor, mailer: MailerDep,
           conf: IdentityConf) -> ApplicationOut:
    """Checks completeness and eligibility (400 with every problem); calls with automatic review
    accept and allocate at once."""
    service.submit(session=session, actor=actor, mailer=mailer, application_id=application_id, invitations=conf)
    return _detail(session, actor, application_id)


@router.post("/{application_id}/automatic-review", response_model=ApplicationOut,
             summary="Ask again for the automatic review of a submitted application",
             responses=errors(400, 401, 403, 404, 409))
def retry_automatic_review(application_id: Id, session: DB, actor: CurrentActor, mailer: MailerDep,
                           conf: IdentityConf) -> ApplicationOut:
    """For a call with automatic review: an application that waited (an unverified address, an unconfirmed
    membership of its organisation) is granted now if all is in order, else waits with a note saying why."""
    service.retry_automatic_review(session=session, actor=actor, mailer=mailer, application_id=application_id,
                                   invitations=conf)
    return _detail(session, actor, application_id)


@router.post("/{application_id}/withdraw", response_model=ApplicationOut, summary="Withdraw before the decision",
             responses=errors(401, 403, 404, 409))
def withdraw(application_id: Id, session: DB, actor: CurrentActor) -> ApplicationOut:
    service.withdraw(session=session, actor=actor, application_id=application_id)
    return _detail(session, actor, application_id)


@router.post("/{application_id}/stage", response_model=ApplicationOut, summary="Start a review stage (operators)",
             responses=errors(400, 401, 403, 404, 409))
def start_stage(application_id: Id, body: StageIn, session: DB, actor: Operator) -> ApplicationOut:
    service.start_stage(session=session, actor=actor, application_id=application_id, stage=body.stage, note=body.note)
    return _detail(session, actor, application_id)


@router.post("/{application_id}/decision", response_model=ApplicationOut, summary="Accept or reject (operators)",
             responses=errors(400, 401, 403, 404, 409))
def decide(application_id: Id, body: DecisionIn, session: DB, actor: Operator, mailer: MailerDep,
           conf: IdentityConf) -> ApplicationOut:
    """Accepting allocates at once (the request, or the amounts given here) unless ``allocate`` is false."""
    service.decide(
        session=session, actor=actor, mailer=mailer, application_id=application_id, accept=body.accept,
        comment=body.comment, allocate=body.allocate, gpu_hours=body.gpu_hours, tokens=body.tokens,
        duration_months=body.duration_months, invitations=conf,
    )
    return _detail(session, actor, application_id)


@router.post("/{application_id}/allocate", response_model=ApplicationOut,
             summary="Allocate an accepted application (operators)", responses=errors(400, 401, 403, 404, 409))
def allocate(application_id: Id, body: GrantIn, session: DB, actor: Operator, mailer: MailerDep,
             conf: IdentityConf) -> ApplicationOut:
    service.allocate_accepted(
        session=session, actor=actor, mailer=mailer, application_id=application_id, gpu_hours=body.gpu_hours,
        tokens=body.tokens, duration_months=body.duration_months, invitations=conf,
    )
    return _detail(session, actor, application_id)


@reviews_router.get("", response_model=list[ReviewOut], summary="Reviews assigned to you",
                    responses={**PAGED, **errors(400, 401, 404)})
def list_reviews(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    application_id: Annotated[str | None, Query(max_length=32)] = None,
    pending: bool | None = None,
    everyone: Annotated[bool, Query(description="Operators: every reviewer's reviews.")] = False,
) -> list[ReviewOut]:
    """Newest assignment first."""
    filters: dict[str, Any] = {"application_id": application_id, "pending": pending, "everyone": everyone}
    found = reviews.list_reviews(session=session, actor=actor, **filters, limit=page.limit, offset=page.offset)
    api_paging.send(request, response, page, reviews.count_reviews(session=session, actor=actor, **filters))
    return [visibility.review_for_operator(r) for r in found]


@reviews_router.post("", response_model=ReviewOut, status_code=201, summary="Assign a reviewer (operators)",
                     responses=errors(400, 401, 403, 404, 409))
def assign(body: AssignIn, session: DB, actor: Operator, mailer: MailerDep) -> ReviewOut:
    """Refused (409 conflict_of_interest) for a reviewer of the applicant's organisation, team or project."""
    review = reviews.assign(
        session=session, actor=actor, mailer=mailer, application_id=body.application_id,
        reviewer_email=body.reviewer_email, stage=body.stage,
    )
    return visibility.review_for_operator(review)


@reviews_router.post("/{review_id}/submit", response_model=ReviewOut, summary="Score and comment (the reviewer)",
                     responses=errors(400, 401, 403, 404, 409))
def submit_review(review_id: str, body: ReviewIn, session: DB, actor: CurrentActor) -> ReviewOut:
    review = reviews.submit_review(
        session=session, actor=actor, review_id=review_id, score=body.score, comment=body.comment
    )
    return visibility.review_for_reviewer(review)


@reviews_router.post("/{review_id}/decline", status_code=204,
                     summary="Decline an assigned review, with a reason (the reviewer)",
                     responses=errors(400, 401, 403, 404, 409))
def decline_review(review_id: str, body: DeclineIn, session: DB, actor: CurrentActor, mailer: MailerDep) -> Response:
    """For a review not yet written: a conflict of interest, or no time. The assignment ends; the operators
    are told by e-mail, with the reason."""
    reviews.decline(session=session, actor=actor, mailer=mailer, review_id=review_id, reason=body.reason,
                    conflict=body.conflict_of_interest)
    return Response(status_code=204)
