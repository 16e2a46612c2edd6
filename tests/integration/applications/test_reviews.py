"""Reviews: assignment with conflict-of-interest checks, scores and comments, what the applicant sees."""

from __future__ import annotations

import functools

import pytest

from jaif.applications import reviews, service, visibility
from jaif.applications.schemas import DraftIn
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from tests.support.frontdoor import actor_of, complete


@pytest.fixture
def case(session, world):
    """A Fast Lane application of an applicant at 'Uni A', submitted; an operator."""
    world.call("fast-lane")
    world.call("large-scale")
    org = world.org("Uni A")
    applicant = world.user(org=org, email="pi@uni-a.example")
    application = service.create_draft(
        session=session,
        actor=actor_of(applicant),
        data=DraftIn(**complete("fast-lane", team=["postdoc@uni-a.example"])),
    )
    service.submit(session=session, actor=actor_of(applicant), mailer=None, application_id=application.id)
    operator = world.user(role="operator")
    return application, applicant, actor_of(operator), org


def _assign(session, operator, application, reviewer, stage="technical", mailer=None):
    return reviews.assign(
        session=session,
        actor=operator,
        mailer=mailer,
        application_id=application.id,
        reviewer_email=reviewer.email,
        stage=stage,
    )


def test_a_reviewer_of_the_applicants_organisation_is_refused(session, world, case):
    application, _applicant, operator, org = case
    colleague = world.user(role="reviewer", org=org)
    with pytest.raises(Conflict) as caught:
        _assign(session, operator, application, colleague)
    assert caught.value.code == "conflict_of_interest" and caught.value.param == "reviewer_email"
    assert caught.value.message == (
        f"conflict of interest: {colleague.email} belongs to Uni A, the applicant's organisation; "
        "choose another reviewer"
    )
    assert application.state == "submitted" and application.reviews == []


def test_the_applicant_and_the_team_are_refused(session, world, case):
    application, applicant, operator, _org = case
    applicant.role = "reviewer"
    with pytest.raises(Conflict, match="is the applicant"):
        _assign(session, operator, application, applicant)
    postdoc = world.user(role="reviewer", email="postdoc@uni-a.example", org=world.org())
    with pytest.raises(Conflict, match="in the application's team"):
        _assign(session, operator, application, postdoc)


def test_reviewers_need_the_role(session, world, case):
    application, _applicant, operator, _org = case
    with pytest.raises(InvalidRequest, match="not an active reviewer"):
        _assign(session, operator, application, world.user(org=world.org()))
    with pytest.raises(NotFound):
        reviews.assign(
            session=session,
            actor=operator,
            mailer=None,
            application_id=application.id,
            reviewer_email="nobody@example.org",
            stage="technical",
        )


def test_only_operators_assign(session, world, case):
    application, _applicant, _operator, _org = case
    reviewer = world.user(role="reviewer", org=world.org())
    with pytest.raises(Forbidden):
        _assign(session, actor_of(reviewer), application, reviewer)


def test_assignment_starts_the_review_stages(session, world, case):
    _fast_lane, applicant, operator, _org = case
    # Large Scale has technical and then peer review (Fast Lane has no peer review: the test below).
    application = service.create_draft(session=session, actor=actor_of(applicant),
                                       data=DraftIn(**complete("large-scale", team=["postdoc@uni-a.example"])))
    service.submit(session=session, actor=actor_of(applicant), mailer=None, application_id=application.id)
    tech, peer = (world.user(role="reviewer", org=world.org()) for _ in range(2))
    with pytest.raises(Conflict, match="technical review before assigning peer"):
        _assign(session, operator, application, peer, stage="peer")
    _assign(session, operator, application, tech)
    assert application.state == "technical_review"
    with pytest.raises(Conflict, match="assigned to the technical review already"):
        _assign(session, operator, application, tech)
    _assign(session, operator, application, peer, stage="peer")
    assert application.state == "peer_review"
    assert [e.note for e in application.events if e.to_state.endswith("_review")] == [
        "technical review started",
        "peer review started",
    ]


def test_scores_and_comments(session, world, case):
    application, _applicant, operator, _org = case
    reviewer = world.user(role="reviewer", org=world.org())
    review = _assign(session, operator, application, reviewer)
    with pytest.raises(InvalidRequest):
        reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=6, comment="x")
    with pytest.raises(InvalidRequest):
        reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=3, comment=" ")
    reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=3, comment="Fine")
    reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=4, comment="Better")
    assert (review.score, review.comment) == (4, "Better") and review.submitted_at
    other = world.user(role="reviewer", org=world.org())
    with pytest.raises(NotFound):
        reviews.submit_review(session=session, actor=actor_of(other), review_id=review.id, score=1, comment="no")
    with pytest.raises(Forbidden):
        reviews.submit_review(session=session, actor=operator, review_id=review.id, score=1, comment="no")
    service.decide(session=session, actor=operator, mailer=None, application_id=application.id, accept=False)
    with pytest.raises(Conflict, match="reviews are closed"):
        reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=5, comment="!")


def test_the_applicant_sees_comments_without_identities(session, world, case):
    application, applicant, operator, _org = case
    first = world.user(role="reviewer", org=world.org(), email="first.reviewer@example.org")
    second = world.user(role="reviewer", org=world.org(), email="second.reviewer@example.org")
    for reviewer, score, comment in ((first, 4, "Solid plan"), (second, 2, "Data unclear")):
        review = _assign(session, operator, application, reviewer)
        reviews.submit_review(
            session=session, actor=actor_of(reviewer), review_id=review.id, score=score, comment=comment
        )
    mine = visibility.detail(application, actor_of(applicant))
    assert mine.reviews == [] and mine.decision_comment == ""
    service.decide(
        session=session,
        actor=operator,
        mailer=world.mailer,
        application_id=application.id,
        accept=False,
        comment="Not feasible on this partition",
    )
    mine = visibility.detail(application, actor_of(applicant))
    assert mine.state == "rejected" and mine.decision_comment == "Not feasible on this partition"
    assert sorted((r.score, r.comment) for r in mine.reviews) == [(2, "Data unclear"), (4, "Solid plan")]
    dumped = mine.model_dump_json()
    for secret in (first.email, second.email, first.id, second.id, *(r.id for r in application.reviews)):
        assert secret not in dumped
    assert {e.actor for e in mine.events} <= {"you", "operator", "automatic"}
    [decision] = [m for m in world.mails(applicant.email) if m.subject.startswith("Decision")]
    assert "Data unclear" in decision.body and "Solid plan" in decision.body
    assert first.email not in decision.body and second.email not in decision.body
    full = visibility.detail(application, operator)
    assert {r.reviewer_email for r in full.reviews} == {first.email, second.email}


def test_a_reviewer_sees_only_what_is_assigned(session, world, case):
    application, _applicant, operator, _org = case
    reviewer = world.user(role="reviewer", org=world.org())
    other_reviewer = world.user(role="reviewer", org=world.org())
    as_reviewer = actor_of(reviewer)
    assert service.list_applications(session=session, actor=as_reviewer) == []
    with pytest.raises(NotFound):
        service.get_application(session=session, actor=as_reviewer, application_id=application.id)
    mine = _assign(session, operator, application, reviewer)
    theirs = _assign(session, operator, application, other_reviewer)
    assert service.list_applications(session=session, actor=as_reviewer) == [application]
    seen = visibility.detail(
        service.get_application(session=session, actor=as_reviewer, application_id=application.id), as_reviewer
    )
    assert [r.id for r in seen.reviews] == [mine.id]
    assert [r.id for r in reviews.list_reviews(session=session, actor=as_reviewer)] == [mine.id]
    assert {r.id for r in reviews.list_reviews(session=session, actor=operator, everyone=True)} == {mine.id, theirs.id}
    assert reviews.list_reviews(session=session, actor=operator) == []  # the operator has none of their own
    assert len(reviews.list_reviews(session=session, actor=operator, application_id=application.id)) == 2
    assert reviews.list_reviews(session=session, actor=as_reviewer, pending=False) == []


def test_a_call_without_peer_review_never_moves_into_it(session, world, case):
    """Issue 14, item 4: Fast Lane has a technical review only; a peer reviewer is refused, and the
    application stays in technical review."""
    application, _applicant, operator, _org = case
    assert application.call.review_mode == "technical"
    first, second = world.user(role="reviewer", org=world.org()), world.user(role="reviewer", org=world.org())
    _assign(session, operator, application, first)
    assert application.state == "technical_review"
    with pytest.raises(Conflict, match="has no peer review") as caught:
        _assign(session, operator, application, second, stage="peer")
    assert caught.value.param == "stage" and application.state == "technical_review"


def test_a_reviewer_declines_with_a_reason_and_the_operator_sees_it(session, world, case):
    """Issue 14, item 4: a reviewer declares a conflict of interest or declines, with a reason."""
    application, _applicant, operator, _org = case
    reviewer = world.user(role="reviewer", org=world.org())
    review = _assign(session, operator, application, reviewer)
    decline = functools.partial(reviews.decline, session=session, mailer=world.mailer)
    with pytest.raises(InvalidRequest, match="say why you decline") as caught:
        decline(actor=actor_of(reviewer), review_id=review.id, reason="  ")
    assert caught.value.param == "reason"
    other = world.user(role="reviewer", org=world.org())
    with pytest.raises(NotFound):
        decline(actor=actor_of(other), review_id=review.id, reason="not mine")
    decline(actor=actor_of(reviewer), review_id=review.id, conflict=True, reason="I co-author with the applicant")
    assert application.reviews == [] and application.state == "technical_review"
    assert application.events[-1].note == "a reviewer declined the technical review; another one is to be asked"
    seen = visibility.detail(application, actor_of(application.applicant))
    assert "co-author" not in str(seen.model_dump()) and reviewer.email not in str(seen.model_dump())
    [told] = [m for m in world.mails(to=operator.email) if m.subject.startswith("Review declined")]
    assert f"{reviewer.email} declares a conflict of interest" in told.body and "I co-author" in told.body
    # A written review is revised, not declined.
    second = _assign(session, operator, application, other)
    reviews.submit_review(session=session, actor=actor_of(other), review_id=second.id, score=4, comment="Fine")
    with pytest.raises(Conflict, match="written this review already"):
        decline(actor=actor_of(other), review_id=second.id, reason="changed my mind")
