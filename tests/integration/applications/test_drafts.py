"""Drafts are never lost, submission checks completeness and eligibility field by field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jaif.access.models import Organisation
from jaif.access.schemas import CLI_ACTOR
from jaif.applications import service
from jaif.applications.checks import SubmissionRefused
from jaif.applications.schemas import DraftIn, OrganisationProposal
from jaif.calls.schemas import CallPatch
from jaif.calls.service import update_call
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, NotFound
from tests.support.frontdoor import complete


def _refused(session, actor, application) -> dict[str, str]:
    with pytest.raises(SubmissionRefused) as caught:
        service.submit(session=session, actor=actor, mailer=None, application_id=application.id)
    assert caught.value.status == 400 and caught.value.code == "submission_refused"
    return {p.field: p.message for p in caught.value.problems}


def test_a_draft_is_saved_field_by_field(session, world):
    world.call("fast-lane")
    user, actor = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(call_id="fast-lane"))
    assert draft.state == "draft" and draft.organisation_id == user.organisation_id
    service.update_draft(session=session, actor=actor, application_id=draft.id, data=DraftIn(title="Half done"))
    service.update_draft(
        session=session,
        actor=actor,
        application_id=draft.id,
        data=DraftIn(requested_gpu_hours={"booster": 100}, team=["a@example.org", " "]),
    )
    service.update_draft(session=session, actor=actor, application_id=draft.id, data=DraftIn(abstract="Short."))
    again = service.get_application(session=session, actor=actor, application_id=draft.id)
    assert (again.title, again.abstract, again.requested_gpu_hours, again.team) == (
        "Half done",
        "Short.",
        {"booster": 100.0},
        ["a@example.org"],
    )
    assert [e.to_state for e in again.events] == ["draft"] and again.events[0].actor_id == user.id


def test_submission_lists_every_problem(session, world):
    world.call("fast-lane")
    _user, actor = world.actor()  # no organisation
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(call_id="fast-lane", abstract="Too short"))
    problems = _refused(session, actor, draft)
    assert set(problems) >= {
        "title",
        "abstract",
        "domain",
        "ai_act_risk",
        "requested_gpu_hours",
        "duration_months",
        "organisation",
    }
    assert problems["organisation"] == "name the organisation the project is carried out at"
    assert service.get_application(session=session, actor=actor, application_id=draft.id).state == "draft"
    found = {p.field for p in service.check(session=session, actor=actor, application_id=draft.id)}
    assert found == set(problems)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"requested_gpu_hours": {"booster": 60_000}}, "requested_gpu_hours", "at most 50000 GPU-hours"),
        ({"requested_gpu_hours": {"other": 10}}, "requested_gpu_hours", "not on other"),
        ({"requested_gpu_hours": {}, "requested_tokens": 0}, "requested_gpu_hours", "GPU-hours, inference tokens"),
        ({"requested_tokens": 10**9}, "requested_tokens", "at most 100000000 tokens"),
        ({"duration_months": 6}, "duration_months", "1, 2, 3 months"),
        ({"ai_act_risk": "unacceptable"}, "ai_act_risk", "prohibited"),
        ({"ai_act_risk": "high", "ai_act_notes": ""}, "ai_act_notes", "high-risk"),
        ({"personal_data": True, "datasets": ""}, "datasets", "personal data"),
        ({"team": ["not-an-address"]}, "team", "not an e-mail address"),
        ({"abstract": "x" * 10}, "abstract", "at least 50 characters"),
    ],
)
def test_limits_and_declarations(session, world, fields, field, words):
    world.call("fast-lane")
    _user, actor = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane", **fields)))
    problems = _refused(session, actor, draft)
    assert set(problems) == {field} and words in problems[field]


def test_large_scale_needs_more_than_fifty_thousand(session, world):
    world.call("large-scale")
    _user, actor = world.actor(org=world.org())
    draft = service.create_draft(
        session=session, actor=actor, data=DraftIn(**complete("large-scale", requested_gpu_hours={"booster": 5000}))
    )
    assert "50001 GPU-hours or more" in _refused(session, actor, draft)["requested_gpu_hours"]


@pytest.mark.parametrize(
    ("country", "eligible"), [("DE", True), ("NO", True), ("GB", True), ("US", False), ("CN", False)]
)
def test_country_of_the_organisation(session, world, country, eligible):
    world.call("fast-lane")
    _user, actor = world.actor(org=world.org(country=country))
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane")))
    if eligible:
        assert service.submit(session=session, actor=actor, mailer=None, application_id=draft.id).state == "submitted"
    else:
        assert "neither an EU member state nor a country associated" in _refused(session, actor, draft)["organisation"]


def test_sector_of_the_organisation(session, world):
    call = world.call("fast-lane")
    update_call(session=session, actor=CLI_ACTOR, ref=call.slug, data=CallPatch(eligible_sectors=["startup", "sme"]))
    _user, actor = world.actor(org=world.org("BigCo", sector="industry"))
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane")))
    assert _refused(session, actor, draft)["organisation"] == (
        "BigCo is in the industry sector; this call is open to startup, sme only"
    )


@pytest.mark.parametrize(
    "patch",
    [
        CallPatch(is_active=False),
        CallPatch(opens_at=utcnow() + timedelta(days=3)),
    ],
)
def test_the_call_must_be_open(session, world, patch):
    call = world.call("fast-lane")
    _user, actor = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane")))
    update_call(session=session, actor=CLI_ACTOR, ref=call.slug, data=patch)
    assert "call_id" in _refused(session, actor, draft)


def test_a_closed_call(session, world):
    call = world.call("fast-lane")
    _user, actor = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane")))
    call.opens_at = utcnow() - timedelta(days=10)
    call.closes_at = utcnow() - timedelta(days=1)
    assert "this call closed on" in _refused(session, actor, draft)["call_id"]


def test_a_new_organisation_is_made_on_submission(session, world):
    world.call("fast-lane")
    user, actor = world.actor()
    proposal = OrganisationProposal(name="Start-up GmbH", sector="startup", country="DE")
    data = DraftIn(**complete("fast-lane"), organisation=proposal)
    draft = service.create_draft(session=session, actor=actor, data=data)
    assert draft.organisation_id is None and session.query(Organisation).filter_by(name="Start-up GmbH").count() == 0
    service.submit(session=session, actor=actor, mailer=None, application_id=draft.id)
    org = session.query(Organisation).filter_by(name="Start-up GmbH").one()
    assert draft.organisation_id == org.id and user.organisation_id == org.id and org.sector == "startup"


def test_a_proposed_organisation_outside_the_eu_is_refused(session, world):
    world.call("fast-lane")
    _user, actor = world.actor()
    proposal = OrganisationProposal(name="Acme Inc", sector="industry", country="US")
    data = DraftIn(**complete("fast-lane"), organisation=proposal)
    draft = service.create_draft(session=session, actor=actor, data=data)
    assert "Acme Inc is based in US" in _refused(session, actor, draft)["organisation"]
    assert session.query(Organisation).filter_by(name="Acme Inc").count() == 0


def test_only_drafts_change_and_only_by_the_applicant(session, world):
    world.call("fast-lane")
    _user, actor = world.actor(org=world.org())
    _other, other = world.actor(org=world.org())
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("fast-lane")))
    with pytest.raises(NotFound):
        service.update_draft(session=session, actor=other, application_id=draft.id, data=DraftIn(title="mine"))
    _op, operator = world.actor(role="operator")
    with pytest.raises(Forbidden):
        service.update_draft(session=session, actor=operator, application_id=draft.id, data=DraftIn(title="ops"))
    service.submit(session=session, actor=actor, mailer=None, application_id=draft.id)
    with pytest.raises(Conflict, match="only drafts can be changed"):
        service.update_draft(session=session, actor=actor, application_id=draft.id, data=DraftIn(title="late"))
    with pytest.raises(Conflict):
        service.delete_draft(session=session, actor=actor, application_id=draft.id)
    with pytest.raises(Conflict):
        service.submit(session=session, actor=actor, mailer=None, application_id=draft.id)


def test_a_draft_may_be_deleted(session, world):
    world.call("fast-lane")
    _user, actor = world.actor()
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(call_id="fast-lane"))
    service.delete_draft(session=session, actor=actor, application_id=draft.id)
    with pytest.raises(NotFound):
        service.get_application(session=session, actor=actor, application_id=draft.id)


def test_the_cli_makes_no_applications(session, world):
    world.call("fast-lane")
    with pytest.raises(Forbidden):
        service.create_draft(session=session, actor=CLI_ACTOR, data=DraftIn(call_id="fast-lane"))
