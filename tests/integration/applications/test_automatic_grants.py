"""Automatic grants and organisation membership (issue 9, item 8): the Playground granted 500 GPU-hours and
2M tokens at once to an unverified address under an organisation the applicant had declared itself.

The rule (docs/access.md): a call with automatic review grants at once only to an applicant whose e-mail
address is verified and whose membership of the application's organisation is confirmed, by a confirmed
member, an operator, or a verified address in a domain the organisation registered. Otherwise the
application waits, submitted, with a note; the applicant asks again once it is in order."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from jaif.access import membership
from jaif.access.models import User
from jaif.allocations.models import Allocation
from jaif.applications import service
from jaif.applications.schemas import DraftIn
from jaif.db.base import utcnow
from jaif.errors import NotFound
from tests.support.frontdoor import complete
from tests.support.frontdoor_api import bearer, error_of
from tests.support.services import actor_of

ASK = {"requested_gpu_hours": {"booster": 500.0}, "requested_tokens": 2_000_000, "duration_months": 2}


def _apply(session, world, user: User, **fields):
    world.call("playground")
    actor = actor_of(user)
    draft = service.create_draft(session=session, actor=actor, data=DraftIn(**complete("playground", **ASK, **fields)))
    return service.submit(session=session, actor=actor, mailer=world.mailer, application_id=draft.id)


def _granted(session, application) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.application_id == application.id)))


def test_an_unverified_address_gets_nothing_at_once(session, world):
    user = world.user(org=world.org(), verified=False)
    application = _apply(session, world, user)
    assert application.state == "submitted" and _granted(session, application) == []
    note = application.events[-1].note
    assert "not accepted automatically" in note and "is not verified yet" in note


def test_a_self_declared_organisation_gets_nothing_at_once(session, world):
    """The attack: a verified address names a new organisation (or an existing one) as its own."""
    newcomer = world.user()  # verified, no organisation yet
    application = _apply(session, world, newcomer,
                         organisation={"name": "Self-Declared AI GmbH", "sector": "startup", "country": "DE"})
    assert application.state == "submitted" and _granted(session, application) == []
    assert newcomer.organisation_id == application.organisation_id
    assert membership.state(newcomer) == "pending"
    assert "membership of Self-Declared AI GmbH is not confirmed yet" in application.events[-1].note

    known = world.org("Known University")
    intruder = world.user()
    claimed = _apply(session, world, intruder, organisation_id=known.id)
    assert claimed.state == "submitted" and _granted(session, claimed) == []


def test_a_verified_address_in_a_registered_domain_is_granted_at_once(session, world):
    org = world.org("Uni Domain")
    membership.add_domain(session=session, actor=actor_of(world.user(role="operator")), organisation_id=org.id,
                          domain="@Uni-Domain.Example.")
    user = world.user(email="ada@uni-domain.example")
    application = _apply(session, world, user, organisation_id=org.id)
    assert application.state == "allocated" and len(_granted(session, application)) == 2
    assert user.organisation_confirmed_via == "domain"
    # The same domain does nothing for an address not yet verified.
    unverified = world.user(email="bob@uni-domain.example", verified=False)
    assert _apply(session, world, unverified, organisation_id=org.id).state == "submitted"


async def test_confirmed_then_asked_again_it_is_granted(api, session, world):
    user = world.user()
    application = _apply(session, world, user,
                         organisation={"name": "Later Confirmed", "sector": "academia", "country": "FR"})
    assert application.state == "submitted"
    me = bearer(session, user)
    url = f"/api/v1/applications/{application.id}/automatic-review"
    still = await api.post(url, headers=me)
    assert still.status_code == 200 and still.json()["state"] == "submitted"
    operator = bearer(session, world.user(role="operator"))
    confirm = f"/api/v1/organisations/{application.organisation_id}/members/confirm"
    done = await api.post(confirm, json={"email": user.email.upper()}, headers=operator)
    assert done.status_code == 200 and done.json()["confirmed_via"] == "operator", done.text
    granted = await api.post(url, headers=me)
    assert granted.status_code == 200 and granted.json()["state"] == "allocated", granted.text
    error_of(await api.post(url, headers=me), 409)  # nothing waits any more


async def test_members_confirm_their_colleagues_and_pending_ones_see_nothing(api, session, world):
    org = world.org("Colleagues Lab")
    senior = world.user(org=org)  # confirmed
    junior = world.user(org=org, confirmed=False)
    stranger = world.user(org=world.org())
    members_url = f"/api/v1/organisations/{org.id}/members"
    confirm_url = f"{members_url}/confirm"
    # A pending member and a member of another organisation can neither list nor confirm.
    for who in (junior, stranger):
        error_of(await api.get(members_url, headers=bearer(session, who)), 404)
        error_of(await api.post(confirm_url, json={"email": junior.email}, headers=bearer(session, who)), 404)
    listed = await api.get(members_url, headers=bearer(session, senior))
    assert [(m["email"], m["state"]) for m in listed.json()] == [(junior.email, "pending"), (senior.email, "confirmed")]
    confirmed = await api.post(confirm_url, json={"email": junior.email}, headers=bearer(session, senior))
    assert confirmed.status_code == 200 and confirmed.json()["confirmed_via"] == "member"
    session.refresh(junior)
    assert membership.state(junior) == "confirmed"
    # Someone who never named the organisation cannot be confirmed into it.
    error_of(await api.post(confirm_url, json={"email": stranger.email}, headers=bearer(session, senior)), 404)


def test_a_member_with_an_unverified_address_confirms_no_one(session, world):
    # An unverified account holds no token (docs/identity.md), but may still be signed in by cookie:
    # the service refuses it whatever the channel.
    org = world.org()
    unverified = world.user(org=org, verified=False)
    pending = world.user(org=org, confirmed=False)
    with pytest.raises(NotFound):
        membership.confirm(session=session, actor=actor_of(unverified), organisation_id=org.id, email=pending.email)
    assert membership.state(pending) == membership.PENDING


async def test_operators_register_domains_one_organisation_each(api, session, world):
    org, other = world.org(), world.org()
    operator = bearer(session, world.user(role="operator"))
    url = f"/api/v1/organisations/{org.id}/domains"
    added = await api.post(url, json={"domain": "lab.example"}, headers=operator)
    assert added.status_code == 201 and added.json() == {"domains": ["lab.example"]}
    error_of(await api.post(f"/api/v1/organisations/{other.id}/domains", json={"domain": "LAB.example"},
                            headers=operator), 409)
    assert error_of(await api.post(url, json={"domain": "not a domain"}, headers=operator), 400)["param"] == "domain"
    member = world.user(org=org)
    error_of(await api.post(url, json={"domain": "evil.example"}, headers=bearer(session, member)), 403)
    assert (await api.get(url, headers=bearer(session, member))).json() == {"domains": ["lab.example"]}
    removed = await api.delete(f"{url}/lab.example", headers=operator)
    assert removed.status_code == 200 and removed.json() == {"domains": []}


def test_changing_organisation_starts_pending_again(session, world):
    first, second = world.org(), world.org()
    user = world.user(org=first)
    assert membership.state(user) == "confirmed"
    membership.join(session, user=user, organisation_id=second.id)
    assert membership.state(user) == "pending" and user.organisation_confirmed_via is None
    user.email_verified_at = utcnow()
    assert membership.is_confirmed_member(session, user=user, organisation_id=second.id) is False
