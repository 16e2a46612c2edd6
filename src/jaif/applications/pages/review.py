"""The review queue: the reviews assigned to the signed-in reviewer, and one review's form (score 1-5 and a
comment, revisable until the decision). Reviews of others, and applications not assigned to the
reviewer, do not exist here (404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.applications import reviews, visibility
from jaif.applications.models import Review
from jaif.applications.states import UNDER_REVIEW
from jaif.errors import JaifError
from jaif.identity.deps import PageUser
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB
from jaif.web.display import render
from jaif.web.forms import FormStr, attempt, field_error
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)
SCORES = [(5, "5 — excellent"), (4, "4 — good"), (3, "3 — fair"), (2, "2 — weak"), (1, "1 — poor")]


@router.get("/review")
def queue(
    request: Request, session: DB, actor: PageUser, page: Annotated[str, Query(max_length=12)] = "1"
) -> Response:
    """Those still to review first, then the rest; newest assignment first in each, 50 a page."""
    pager = Pager.of(request, page=page, total=reviews.count_reviews(session=session, actor=actor))
    found = reviews.queue_rows(session=session, actor=actor, limit=pager.size, offset=pager.offset)
    pending = [r for r in found if r.open]
    done = [r for r in found if not r.open]
    waiting = reviews.count_reviews(session=session, actor=actor, only_open=True)
    return render(request, "applications/review_queue.html", section="review", pending=pending, done=done, pager=pager,
                  waiting=waiting)


def _mine(session: Session, actor: Actor, review_id: str) -> Review:
    return reviews.own_review(session=session, actor=actor, review_id=review_id)


def _page(request: Request, session: Session, actor: Actor, review_id: str, *, values=None, errors=None,
          status_code: int = 200) -> Response:
    review = _mine(session, actor, review_id)
    app = visibility.detail(review.application, actor)
    values = {"score": str(review.score or ""), "comment": review.comment, "reason": "", "conflict": False,
              **(values or {})}
    return render(request, "applications/review_form.html", status_code, section="review", review=review, app=app,
                  open=review.application.state in UNDER_REVIEW, scores=SCORES, values=values,
                  errors=errors or {})


@router.get("/review/{review_id}")
def review_form(request: Request, session: DB, actor: PageUser, review_id: str) -> Response:
    return _page(request, session, actor, review_id)


@router.post("/review/{review_id}")
def submit(request: Request, session: DB, actor: PageUser, review_id: str, score: FormStr = "",
           comment: FormStr = "") -> Response:
    values = {"score": score, "comment": comment}
    errors = {}
    if score not in {str(s) for s, _ in SCORES}:
        errors["score"] = "Choose a score from 1 (poor) to 5 (excellent)."
    if not comment.strip():
        errors["comment"] = "Explain your score in a comment; the applicant reads it, without your name."
    if not errors:
        try:
            attempt(session, lambda: reviews.submit_review(session=session, actor=actor, review_id=review_id,
                                                           score=int(score), comment=comment))
        except JaifError as exc:
            if exc.status == 404:
                raise
            errors = field_error(exc, "comment")
    if errors:
        return _page(request, session, actor, review_id, values=values, errors=errors, status_code=400)
    flash(request, "Your review is saved. You may revise it until the decision.")
    return RedirectResponse("/review", status_code=303)


@router.post("/review/{review_id}/decline")
def decline(request: Request, session: DB, actor: PageUser, mailer: MailerDep, review_id: str,
            reason: FormStr = "", conflict: FormStr = "") -> Response:
    """Decline a review not yet written: a conflict of interest, or another reason; the operators are told
    by e-mail."""
    try:
        attempt(session, lambda: reviews.decline(session=session, actor=actor, mailer=mailer, review_id=review_id,
                                                 reason=reason, conflict=bool(conflict)))
    except JaifError as exc:
        if exc.status == 404:
            raise
        values = {"reason": reason, "conflict": bool(conflict)}
        return _page(request, session, actor, review_id, values=values, status_code=exc.status,
                     errors={"reason": exc.message[:1].upper() + exc.message[1:] + "."})
    flash(request, "You declined the review; the operator will ask someone else.")
    return RedirectResponse("/review", status_code=303)
