"""Reviews: operators assign reviewers, reviewers score and comment, the operator decides (service.py).

- A reviewer must have the reviewer (or operator) role and no conflict of interest: not the applicant,
  not in the team, not a member of the project (renewals, top-ups), and not of the applicant's
  organisation. A conflict is refused with the reason.
- Assigning a technical reviewer to a submitted application starts its technical review; assigning a
  peer reviewer to one in technical review starts its peer review.
- A reviewer sees and scores only what is assigned to them, while the application is under review.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Row, and_, case, func, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from jaif.access.models import Organisation, ProjectMember, User
from jaif.access.schemas import Actor
from jaif.applications import emails, states
from jaif.applications.models import Application, ApplicationState, Review
from jaif.applications.service import get_application
from jaif.calls.models import AccessCall, ReviewMode
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.notify.mail import Mailer

S = ApplicationState
STAGES = ("technical", "peer")
_ID = re.compile(r"^[0-9a-f]{32}$")


def conflict_of_interest(session: Session, application: Application, reviewer: User) -> str | None:
    """Why ``reviewer`` may not review ``application``; None when they may."""
    if reviewer.id == application.applicant_id:
        return f"{reviewer.email} is the applicant"
    if reviewer.email.lower() in {e.lower() for e in application.team}:
        return f"{reviewer.email} is in the application's team"
    orgs = {application.organisation_id, application.applicant.organisation_id} - {None}
    if reviewer.organisation_id is not None and reviewer.organisation_id in orgs:
        org = session.get(Organisation, reviewer.organisation_id)
        name = org.name if org is not None else "the same organisation"
        return f"{reviewer.email} belongs to {name}, the applicant's organisation"
    if application.project_id is not None and session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == application.project_id, ProjectMember.user_id == reviewer.id
        )
    ):
        return f"{reviewer.email} is a member of the project"
    return None


def assign(
    *, session: Session, actor: Actor, mailer: Mailer | None, application_id: str, reviewer_email: str, stage: str
) -> Review:
    """An operator asks ``reviewer_email`` for the ``stage`` (technical | peer) review; they are told by e-mail."""
    if not actor.is_operator:
        raise Forbidden("Only operators assign reviewers.")
    if stage not in STAGES:
        raise InvalidRequest("stage must be technical or peer", param="stage")
    application = get_application(session=session, actor=actor, application_id=application_id, lock=True)
    reviewer = session.scalar(select(User).where(func.lower(User.email) == reviewer_email.strip().lower()))
    if reviewer is None:
        raise NotFound(f"no user with e-mail {reviewer_email!r}", param="reviewer_email")
    if reviewer.role not in ("reviewer", "operator") or not reviewer.is_active:
        raise InvalidRequest(f"{reviewer.email} is not an active reviewer; give them the reviewer role first",
                             param="reviewer_email")
    why = conflict_of_interest(session, application, reviewer)
    if why is not None:
        raise Conflict(f"conflict of interest: {why}; choose another reviewer", param="reviewer_email",
                       code="conflict_of_interest")
    if application.state not in states.UNDER_REVIEW:
        raise Conflict(f"the application is {states.label(application.state)}; reviewers are assigned while it is "
                       "under review", param="state")
    if stage == "peer" and application.call.review_mode != ReviewMode.peer:
        raise Conflict(f"the call {application.call.name} has no peer review (its review is "
                       f"{application.call.review_mode}): assign a technical reviewer", param="stage")
    if stage == "technical" and application.state == S.submitted:
        states.move(session, application, S.technical_review, actor_id=actor.user_id, note="technical review started")
    elif stage == "peer" and application.state == S.submitted:
        raise Conflict("start the technical review before assigning peer reviewers", param="stage")
    elif stage == "peer" and application.state == S.technical_review:
        states.move(session, application, S.peer_review, actor_id=actor.user_id, note="peer review started")
    if any(r.reviewer_id == reviewer.id and r.stage == stage for r in application.reviews):
        raise Conflict(f"{reviewer.email} is assigned to the {stage} review already", param="reviewer_email")
    review = Review(reviewer=reviewer, stage=stage, assigned_by_id=actor.user_id)
    application.reviews.append(review)
    session.flush()
    emails.reviewer_assigned(session, mailer, review)
    return review


def _mine(session: Session, actor: Actor, review_id: str) -> Review:
    review = None
    if _ID.match(review_id or "") and actor.user_id is not None:
        review = session.scalar(
            select(Review).where(Review.id == review_id, Review.reviewer_id == actor.user_id).with_for_update()
        )
    if review is None and actor.is_operator and _ID.match(review_id or ""):
        if session.get(Review, review_id) is not None:
            raise Forbidden("Only the assigned reviewer submits a review.")
    if review is None:
        raise NotFound(f"no review {review_id!r} assigned to you", param="id")
    return review


def submit_review(*, session: Session, actor: Actor, review_id: str, score: int, comment: str) -> Review:
    """The assigned reviewer scores (1-5) and comments; they may revise until the decision."""
    review = _mine(session, actor, review_id)
    if not 1 <= score <= 5:
        raise InvalidRequest("score must be 1 (poor) to 5 (excellent)", param="score")
    if not comment.strip():
        raise InvalidRequest("explain the score in a comment", param="comment")
    if review.application.state not in states.UNDER_REVIEW:
        state = states.label(review.application.state)
        raise Conflict(f"the application is {state}; reviews are closed", param="state")
    review.score = score
    review.comment = comment.strip()
    review.submitted_at = utcnow()
    session.flush()
    return review


def decline(*, session: Session, actor: Actor, mailer: Mailer | None, review_id: str, reason: str,
            conflict: bool = False) -> Application:
    """The assigned reviewer declines a review not yet written, with a reason; ``conflict``: because of a
    conflict of interest. The assignment ends; the operators are told by e-mail who declined and why (the
    application's log says only that a reviewer declined: reviewers stay anonymous to the applicant)."""
    review = _mine(session, actor, review_id)
    if not reason.strip():
        raise InvalidRequest("say why you decline: the operator reads it", param="reason")
    if review.submitted_at is not None:
        raise Conflict("you have written this review already; revise it instead of declining", param="id")
    application = review.application
    if application.state not in states.UNDER_REVIEW:
        raise Conflict(f"the application is {states.label(application.state)}; reviews are closed", param="state")
    states.note(session, application, f"a reviewer declined the {review.stage} review; another one is to be asked")
    operators = list(session.scalars(
        select(User.email).where(User.role == "operator", User.is_active.is_(True)).order_by(User.email)))
    emails.review_declined(session, mailer, application, reviewer=actor.email, stage=review.stage, conflict=conflict,
                           reason=reason.strip(), operators=operators)
    application.reviews.remove(review)
    session.delete(review)
    session.flush()
    return application


def _listed(
    session: Session, actor: Actor, *, application_id: str | None, pending: bool | None, everyone: bool
) -> list[ColumnElement[bool]] | None:
    """The WHERE clauses of a list of reviews, shared by the list and its count; None when there are none."""
    where: list[ColumnElement[bool]] = []
    if application_id is not None:
        get_application(session=session, actor=actor, application_id=application_id)  # NotFound if not visible
        where.append(Review.application_id == application_id)
    if not (actor.is_operator and (everyone or application_id is not None)):
        if actor.user_id is None:
            return None
        where.append(Review.reviewer_id == actor.user_id)
    if pending is not None:
        where.append(Review.submitted_at.is_(None) if pending else Review.submitted_at.is_not(None))
    return where


def list_reviews(
    *,
    session: Session,
    actor: Actor,
    application_id: str | None = None,
    pending: bool | None = None,
    everyone: bool = False,
    limit: int | None = None,
    offset: int = 0,
    open_first: bool = False,
) -> list[Review]:
    """The reviews assigned to ``actor``; operators may ask for everyone's (``everyone``, or naming an
    application). Newest first (``open_first``: those still to be done, before the others); a page of
    ``limit`` from ``offset``, or all."""
    where = _listed(session, actor, application_id=application_id, pending=pending, everyone=everyone)
    if where is None:
        return []
    query = (
        select(Review)
        .join(Review.application)
        .options(contains_eager(Review.application).selectinload(Application.call), joinedload(Review.reviewer))
        .where(*where)
    )
    if open_first:
        query = query.order_by(case((is_open(), 0), else_=1))
    query = query.order_by(Review.assigned_at.desc(), Review.id).offset(max(0, offset)).limit(limit)
    return list(session.scalars(query))


def queue_rows(*, session: Session, actor: Actor, limit: int = 50, offset: int = 0) -> list[Row]:
    """The review queue's page of ``list_reviews(open_first=True)`` as plain rows for a table, in one query
    and without objects: id, stage, score, assigned_at, open (still to be done), title, state, call_name."""
    where = _listed(session, actor, application_id=None, pending=None, everyone=False)
    if where is None:
        return []
    still_open = case((is_open(), True), else_=False)
    query = (
        select(Review.id, Review.stage, Review.score, Review.assigned_at, still_open.label("open"),
               Application.title, Application.state, AccessCall.name.label("call_name"))
        .join(Application, Application.id == Review.application_id)
        .join(AccessCall, AccessCall.id == Application.call_id)
        .where(*where)
        .order_by(case((is_open(), 0), else_=1), Review.assigned_at.desc(), Review.id)
        .offset(max(0, offset))
        .limit(limit)
    )
    return list(session.execute(query))


def is_open() -> ColumnElement[bool]:
    """A review still to be done: not submitted, its application under review (needs the join)."""
    return and_(Review.submitted_at.is_(None), Application.state.in_(sorted(states.UNDER_REVIEW)))


def own_review(*, session: Session, actor: Actor, review_id: str) -> Review:
    """A review assigned to ``actor``, with its application; NotFound for any other."""
    review = None
    if _ID.match(review_id or "") and actor.user_id is not None:
        review = session.scalar(
            select(Review).options(joinedload(Review.application))
            .where(Review.id == review_id, Review.reviewer_id == actor.user_id)
        )
    if review is None:
        raise NotFound(f"no review {review_id!r} assigned to you", param="id")
    return review


def count_reviews(
    *, session: Session, actor: Actor, application_id: str | None = None, pending: bool | None = None,
    everyone: bool = False, only_open: bool = False,
) -> int:
    """How many reviews ``list_reviews`` pages through with the same filters (``only_open``: of those, how
    many are still to be done)."""
    where = _listed(session, actor, application_id=application_id, pending=pending, everyone=everyone)
    if where is None:
        return 0
    query = select(func.count()).select_from(Review).where(*where)
    if only_open:
        query = query.join(Review.application).where(is_open())
    return session.scalar(query) or 0
