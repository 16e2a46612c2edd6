"""Who sees and does what with applications: one test per isolation rule.

- a user sees only their own applications;
- a user cannot change, submit, withdraw or delete another's application (it does not exist for them);
- a reviewer sees only the applications assigned to them;
- operators see every application;
- only operators move applications into review, decide, allocate and assign reviewers;
- the CLI acts as an operator.
"""

from __future__ import annotations

import pytest

from jaif.access.schemas import CLI_ACTOR
from jaif.applications import reviews, service
from jaif.applications.schemas import DraftIn
from jaif.errors import Forbidden, NotFound
from tests.support.frontdoor import actor_of, complete


@pytest.fixture
def two(session, world):
    """Alice and Bob, each with a submitted Fast Lane application."""
    world.call("fast-lane")
    people = {}
    for name in ("alice", "bob"):
        user = world.user(org=world.org(), email=f"{name}@example.org")
        application = service.create_draft(session=session, actor=actor_of(user), data=DraftIn(**complete("fast-lane")))
        service.submit(session=session, actor=actor_of(user), mailer=None, application_id=application.id)
        people[name] = (actor_of(user), application)
    return people


def test_a_user_sees_only_their_own_applications(session, two):
    alice, alices = two["alice"]
    _bob, bobs = two["bob"]
    assert service.list_applications(session=session, actor=alice) == [alices]
    assert service.list_applications(session=session, actor=alice, call="fast-lane", state="submitted") == [alices]
    with pytest.raises(NotFound):
        service.get_application(session=session, actor=alice, application_id=bobs.id)
    with pytest.raises(NotFound):
        service.check(session=session, actor=alice, application_id=bobs.id)


def test_a_user_cannot_touch_anothers_application(session, world, two):
    alice, _alices = two["alice"]
    bob, bobs = two["bob"]
    draft = service.create_draft(session=session, actor=bob, data=DraftIn(call_id="fast-lane"))
    for application_id in (bobs.id, draft.id):
        with pytest.raises(NotFound):
            service.withdraw(session=session, actor=alice, application_id=application_id)
    with pytest.raises(NotFound):
        service.update_draft(session=session, actor=alice, application_id=draft.id, data=DraftIn(title="x"))
    with pytest.raises(NotFound):
        service.submit(session=session, actor=alice, mailer=None, application_id=draft.id)
    with pytest.raises(NotFound):
        service.delete_draft(session=session, actor=alice, application_id=draft.id)
    assert bobs.state == "submitted" and draft.state == "draft"


def test_a_reviewer_sees_only_assigned_applications(session, world, two):
    _alice, alices = two["alice"]
    _bob, bobs = two["bob"]
    reviewer = world.user(role="reviewer", org=world.org())
    reviews.assign(
        session=session,
        actor=CLI_ACTOR,
        mailer=None,
        application_id=alices.id,
        reviewer_email=reviewer.email,
        stage="technical",
    )
    as_reviewer = actor_of(reviewer)
    assert service.list_applications(session=session, actor=as_reviewer) == [alices]
    with pytest.raises(NotFound):
        service.get_application(session=session, actor=as_reviewer, application_id=bobs.id)
    with pytest.raises(Forbidden):  # seeing is not changing
        service.withdraw(session=session, actor=as_reviewer, application_id=alices.id)


def test_operators_see_every_application(session, world, two):
    operator = actor_of(world.user(role="operator"))
    ids = {two["alice"][1].id, two["bob"][1].id}
    assert {a.id for a in service.list_applications(session=session, actor=operator)} == ids
    assert {a.id for a in service.list_applications(session=session, actor=CLI_ACTOR)} == ids


@pytest.mark.parametrize("role", ["user", "reviewer"])
def test_only_operators_review_decide_and_allocate(session, world, two, role):
    actor = actor_of(world.user(role=role, org=world.org()))
    alice_actor, alices = two["alice"]
    reviewer = world.user(role="reviewer", org=world.org())
    for who in (actor, alice_actor):
        with pytest.raises(Forbidden):
            service.start_stage(session=session, actor=who, application_id=alices.id, stage="technical_review")
        with pytest.raises(Forbidden):
            service.decide(session=session, actor=who, mailer=None, application_id=alices.id, accept=True)
        with pytest.raises(Forbidden):
            service.allocate_accepted(session=session, actor=who, mailer=None, application_id=alices.id)
        with pytest.raises(Forbidden):
            reviews.assign(
                session=session,
                actor=who,
                mailer=None,
                application_id=alices.id,
                reviewer_email=reviewer.email,
                stage="technical",
            )
    assert alices.state == "submitted"


def test_a_user_sees_only_their_own_reviews(session, world, two):
    _alice, alices = two["alice"]
    first = world.user(role="reviewer", org=world.org())
    second = world.user(role="reviewer", org=world.org())
    for reviewer in (first, second):
        reviews.assign(
            session=session,
            actor=CLI_ACTOR,
            mailer=None,
            application_id=alices.id,
            reviewer_email=reviewer.email,
            stage="technical",
        )
    assert {r.reviewer_id for r in reviews.list_reviews(session=session, actor=actor_of(first), everyone=True)} == {
        first.id
    }
