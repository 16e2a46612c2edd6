"""Every state transition of an application, recorded with who and when; the automatic review of the
Playground; renewals and top-ups; notifications; time-to-access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from jaif.access.models import Project, ProjectMember
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations.models import Allocation
from jaif.applications import reviews, service, time_to_access, visibility
from jaif.applications.schemas import DraftIn
from jaif.calls.schemas import CallPatch
from jaif.calls.service import update_call
from jaif.config import IdentitySettings
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest
from jaif.identity.models import OneTimeToken
from tests.support.frontdoor import actor_of, complete


def _submitted(session, world, call: str, **fields):
    world.call(call)
    user, actor = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete(call, **fields)))
    service.submit(session=session, actor=actor, mailer=world.mailer, application_id=draft.id)
    return draft, user, actor


def _trail(application) -> list[tuple[str | None, str]]:
    return [(e.from_state, e.to_state) for e in sorted(application.events, key=lambda e: e.created_at)]


def test_fast_lane_through_technical_review(session, world):
    application, user, actor = _submitted(session, world, "fast-lane")
    op_user, operator = world.actor(role="operator")
    reviewer, _ = world.actor(role="reviewer", org=world.org())
    review = reviews.assign(
        session=session,
        actor=operator,
        mailer=world.mailer,
        application_id=application.id,
        reviewer_email=reviewer.email,
        stage="technical",
    )
    assert application.state == "technical_review"
    reviews.submit_review(session=session, actor=actor_of(reviewer), review_id=review.id, score=4, comment="Sound")
    service.decide(
        session=session,
        actor=operator,
        mailer=world.mailer,
        application_id=application.id,
        accept=True,
        comment="Welcome",
    )
    assert application.state == "allocated" and application.decided_at and application.allocated_at
    assert _trail(application) == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "technical_review"),
        ("technical_review", "accepted"),
        ("accepted", "allocated"),
    ]
    actors = [e.actor_id for e in sorted(application.events, key=lambda e: e.created_at)]
    assert actors == [user.id, user.id, op_user.id, op_user.id, op_user.id]
    assert all(e.created_at is not None for e in application.events)
    project = session.get(Project, application.project_id)
    assert project.organisation_id == application.organisation_id and project.token_quota == 100_000


def test_large_scale_through_peer_review(session, world):
    application, _user, _actor = _submitted(session, world, "large-scale")
    _op, operator = world.actor(role="operator")
    with pytest.raises(Conflict, match="start the technical review"):
        service.decide(session=session, actor=operator, mailer=None, application_id=application.id, accept=True)
    service.start_stage(session=session, actor=operator, application_id=application.id, stage="technical_review")
    with pytest.raises(Conflict, match="needs a peer review"):
        service.decide(session=session, actor=operator, mailer=None, application_id=application.id, accept=True)
    service.start_stage(session=session, actor=operator, application_id=application.id, stage="peer_review")
    service.decide(
        session=session, actor=operator, mailer=None, application_id=application.id, accept=True, allocate=False
    )
    assert application.state == "accepted" and application.project_id is None
    service.allocate_accepted(
        session=session, actor=operator, mailer=None, application_id=application.id, gpu_hours={"booster": 55_000}
    )
    assert application.state == "allocated"
    [gpu] = [
        a
        for a in session.scalars(select(Allocation).where(Allocation.project_id == application.project_id))
        if a.resource == "gpu_hours"
    ]
    assert gpu.amount == 55_000 and (gpu.ends_at - gpu.starts_at).days in range(181, 185)
    assert visibility.detail(application, operator).cutoff is not None


@pytest.mark.parametrize("state", ["submitted", "technical_review", "peer_review"])
def test_rejection_from_every_review_state(session, world, state):
    application, _user, actor = _submitted(session, world, "large-scale")
    _op, operator = world.actor(role="operator")
    for stage in ("technical_review", "peer_review")[: ["submitted", "technical_review", "peer_review"].index(state)]:
        service.start_stage(session=session, actor=operator, application_id=application.id, stage=stage)
    service.decide(
        session=session,
        actor=operator,
        mailer=world.mailer,
        application_id=application.id,
        accept=False,
        comment="Out of scope",
    )
    assert application.state == "rejected" and application.project_id is None
    with pytest.raises(Conflict):
        service.withdraw(session=session, actor=actor, application_id=application.id)
    with pytest.raises(Conflict):
        service.allocate_accepted(session=session, actor=operator, mailer=None, application_id=application.id)


@pytest.mark.parametrize("state", ["draft", "submitted", "technical_review", "peer_review"])
def test_withdrawal_before_the_decision(session, world, state):
    world.call("large-scale")
    _user, actor = world.actor(org=world.org())
    _op, operator = world.actor(role="operator")
    application = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("large-scale")))
    if state != "draft":
        service.submit(session=session, actor=actor, mailer=None, application_id=application.id)
    for stage in ("technical_review", "peer_review")[
        : ["technical_review", "peer_review"].index(state) + 1 if state in ("technical_review", "peer_review") else 0
    ]:
        service.start_stage(session=session, actor=operator, application_id=application.id, stage=stage)
    assert application.state == state
    service.withdraw(session=session, actor=actor, application_id=application.id)
    assert application.state == "withdrawn" and _trail(application)[-1] == (state, "withdrawn")
    with pytest.raises(Conflict):
        service.withdraw(session=session, actor=actor, application_id=application.id)
    with pytest.raises(Conflict):
        service.decide(session=session, actor=operator, mailer=None, application_id=application.id, accept=True)


def test_no_withdrawal_after_acceptance(session, world):
    application, _user, actor = _submitted(session, world, "fast-lane")
    _op, operator = world.actor(role="operator")
    service.start_stage(session=session, actor=operator, application_id=application.id, stage="technical_review")
    service.decide(
        session=session, actor=operator, mailer=None, application_id=application.id, accept=True, allocate=False
    )
    with pytest.raises(Conflict, match="accepted cannot become withdrawn"):
        service.withdraw(session=session, actor=actor, application_id=application.id)
    with pytest.raises(Conflict):
        service.start_stage(session=session, actor=operator, application_id=application.id, stage="peer_review")


def test_playground_is_allocated_at_once(session, world):
    world.call("playground")
    org = world.org("Uni Jülich")
    user, actor = world.actor(org=org)
    colleague = world.user(email="colleague@example.org")
    data = DraftIn(
        **complete(
            "playground",
            requested_gpu_hours={"booster": 5000},
            requested_tokens=2_000_000,
            team=["colleague@example.org", "newcomer@example.org"],
            project_name="llm-lab",
        )
    )
    application = service.create_draft(session=session, actor=actor, data=data)
    service.submit(session=session, actor=actor, mailer=world.mailer, application_id=application.id)
    assert application.state == "allocated"
    trail = _trail(application)
    assert trail[-3:] == [("draft", "submitted"), ("submitted", "accepted"), ("accepted", "allocated")]
    automatic = [e for e in application.events if e.to_state in ("accepted", "allocated")]
    assert all(e.actor_id is None for e in automatic) and "newcomer@example.org" in automatic[-1].note
    project = session.get(Project, application.project_id)
    assert (project.name, project.organisation_id, project.token_quota) == ("llm-lab", org.id, 2_000_000)
    roles = dict(
        session.execute(
            select(ProjectMember.user_id, ProjectMember.role).where(ProjectMember.project_id == project.id)
        ).all()
    )
    assert roles == {user.id: "pi", colleague.id: "member"}
    made = list(session.scalars(select(Allocation).where(Allocation.application_id == application.id)))
    assert sorted((a.resource, a.partition, a.amount) for a in made) == [
        ("gpu_hours", "booster", 5000.0),
        ("tokens", None, 2_000_000.0),
    ]
    assert all(58 <= (a.ends_at - a.starts_at).days <= 62 for a in made)
    tta = visibility.detail(application, actor).time_to_access
    assert tta.allocated_at is not None and tta.within_target is True and tta.working_days < 0.01


def test_the_team_without_accounts_is_invited_when_access_is_granted(session, world):
    """Issue 14, item 4: the form promises that the team named in it is invited when access is granted."""
    world.call("playground")
    user, actor = world.actor(org=world.org("Uni Bonn"))
    data = DraftIn(**complete("playground", team=["newcomer@example.org"], project_name="bonn-lab"))
    application = service.create_draft(session=session, actor=actor, data=data)
    service.submit(session=session, actor=actor, mailer=world.mailer, application_id=application.id,
                   invitations=IdentitySettings())
    assert application.state == "allocated" and "team members invited: newcomer@example.org" in (
        application.events[-1].note)
    invitation = session.scalar(select(OneTimeToken).where(OneTimeToken.email == "newcomer@example.org"))
    assert (invitation.purpose, invitation.project_id, invitation.project_role, invitation.created_by_id) == (
        "invite", application.project_id, "member", user.id)
    subjects = [n.subject for n in world.mails(to="newcomer@example.org")]
    assert subjects == ["Invitation to the project bonn-lab"]
    granted = [n.body for n in world.mails(to=user.email) if n.subject.startswith("Access granted")]
    assert "Team members invited by e-mail to join the project: newcomer@example.org" in granted[0]


def test_playground_first_come_first_served(session, world):
    call = world.call("playground")
    update_call(session=session, actor=CLI_ACTOR, ref=call.slug, data=CallPatch(offered_gpu_hours={"booster": 6000}))
    first, _u, _a = _submitted(session, world, "playground", requested_gpu_hours={"booster": 5000})
    second, _u, _a = _submitted(session, world, "playground", requested_gpu_hours={"booster": 5000})
    assert first.state == "allocated" and second.state == "submitted"
    assert "1000 GPU-hours left on booster" in second.events[-1].note
    _op, operator = world.actor(role="operator")
    service.decide(
        session=session, actor=operator, mailer=None, application_id=second.id, accept=True, gpu_hours={"booster": 1000}
    )
    assert second.state == "allocated"


def test_project_names_do_not_clash(session, world):
    first, _u, _a = _submitted(session, world, "playground", title="Same title")
    second, _u, _a = _submitted(session, world, "playground", title="Same title")
    names = {session.get(Project, a.project_id).name for a in (first, second)}
    assert names == {"same-title", "same-title-2"}


def test_top_up_and_renewal_add_to_the_project(session, world):
    first, user, actor = _submitted(
        session, world, "playground", requested_tokens=1000, requested_gpu_hours={"booster": 100}
    )
    project = session.get(Project, first.project_id)
    assert project.token_quota == 1000
    top_up = service.create_draft(
        session=session,
        actor=actor,
        data=DraftIn(
            **complete(
                "playground",
                kind="top_up",
                project_id=project.id,
                requested_tokens=500,
                requested_gpu_hours={},
                duration_months=None,
            )
        ),
    )
    service.submit(session=session, actor=actor, mailer=None, application_id=top_up.id)
    assert top_up.state == "allocated" and top_up.project_id == project.id and project.token_quota == 1500
    [extra] = session.scalars(select(Allocation).where(Allocation.application_id == top_up.id))
    [original] = session.scalars(
        select(Allocation).where(Allocation.application_id == first.id, Allocation.resource == "tokens")
    )
    assert extra.ends_at == original.ends_at  # a top-up runs alongside
    renewal = service.create_draft(
        session=session,
        actor=actor,
        data=DraftIn(
            **complete("playground", kind="renewal", project_id=project.id, requested_tokens=700, duration_months=1)
        ),
    )
    service.submit(session=session, actor=actor, mailer=None, application_id=renewal.id)
    made = list(session.scalars(select(Allocation).where(Allocation.application_id == renewal.id)))
    assert made and all(a.starts_at == original.ends_at for a in made)  # a renewal follows on
    assert project.token_quota == 1500  # not started yet
    assert session.get(Project, renewal.project_id) is project and renewal.organisation_id == project.organisation_id


def test_only_a_pi_renews(session, world):
    first, _user, _actor = _submitted(session, world, "playground")
    world.call("playground")
    _other, other = world.actor(org=world.org())
    data = DraftIn(**complete("playground", kind="renewal"))
    draft = service.create_draft(session=session, actor=other, data=data)
    with pytest.raises(InvalidRequest, match="only projects you lead"):
        service.update_draft(
            session=session, actor=other, application_id=draft.id, data=DraftIn(project_id=first.project_id)
        )
    found = {p.field for p in service.check(session=session, actor=other, application_id=draft.id)}
    assert "project_id" in found


def test_notifications(session, world):
    application, user, _actor = _submitted(session, world, "fast-lane")
    _op, operator = world.actor(role="operator")
    reviewer = world.user(role="reviewer", email="rev@example.org")
    reviews.assign(
        session=session,
        actor=operator,
        mailer=world.mailer,
        application_id=application.id,
        reviewer_email=reviewer.email,
        stage="technical",
    )
    service.decide(session=session, actor=operator, mailer=world.mailer, application_id=application.id, accept=True)
    to_applicant = [m.subject.split(":")[0] for m in world.mails(user.email)]
    assert to_applicant == ["Application received", "Decision on your application", "Access granted"]
    [to_reviewer] = world.mails(reviewer.email)
    assert to_reviewer.subject.startswith("Please review") and application.id in to_reviewer.body
    assert all(m.sent_at is not None and m.transport == "outbox" for m in world.mails())
    assert len(list(world.outbox.glob("*.eml"))) == 4


def test_time_to_access_per_call(session, world):
    call = world.call("fast-lane")
    _op, operator = world.actor(role="operator")
    monday = utcnow().replace(year=2026, month=3, day=2, hour=9, minute=0, second=0, microsecond=0)
    durations = [timedelta(hours=h) for h in (2, 20, 30, 50, 200)]  # working days: .08 .83 1.25 2.08 8.33
    for taken in durations:
        application, _u, _a = _submitted(session, world, "fast-lane")
        service.start_stage(session=session, actor=operator, application_id=application.id, stage="technical_review")
        service.decide(session=session, actor=operator, mailer=None, application_id=application.id, accept=True)
        application.submitted_at, application.allocated_at = monday, monday + taken
    _submitted(session, world, "fast-lane")  # pending
    session.flush()
    stats = time_to_access.for_call(session, call)
    assert (stats.allocated, stats.pending, stats.target_days) == (5, 1, 4)
    assert stats.median_days == pytest.approx(30 / 24, abs=1e-3)
    assert stats.within_target == pytest.approx(0.8)
    assert 2.08 < stats.p90_days < 8.34
