"""Training pages: seats left, register, the waitlist, a refused registration shown with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jaif.training import service
from jaif.training.models import TrainingEvent
from tests.support.portal import csrf_of


def plan(session, op, **fields):
    starts = datetime.now(UTC) + timedelta(days=5)
    values = {"title": "Intro to JUPITER", "starts_at": starts, "ends_at": starts + timedelta(hours=3), "seats": 1}
    return service.create_event(session=session, actor=op, **(values | fields))


async def test_register_then_the_next_person_waits_and_moves_up(portal, world, session):
    event = plan(session, world.operator())
    alice, bob = world.user("alice"), world.user("bob")
    as_alice, as_bob = await portal.as_(alice), await portal.as_(bob)
    listing = await as_alice.get("/training")
    assert "Intro to JUPITER" in listing.text and "1 of 1 seats left" in listing.text
    page = f"/training/{event.id}"
    registered = await as_alice.submit(f"{page}/register", {}, page=page)
    assert registered.status_code == 303
    assert "You are registered." in (await as_alice.get(page)).text
    assert "Join the waitlist" in (await as_bob.get(page)).text
    waiting = await as_bob.submit(f"{page}/register", {}, page=page)
    assert waiting.status_code == 303
    assert "You are number 1 on the waitlist" in (await as_bob.get(page)).text
    assert (await as_alice.submit(f"{page}/cancel", {}, page=page)).status_code == 303
    assert "You are registered." in (await as_bob.get(page)).text


async def test_registration_after_the_deadline_is_refused_with_the_reason(portal, world, session):
    event = plan(session, world.operator(), registration_closes_at=datetime.now(UTC) + timedelta(days=1))
    browser = await portal.as_(world.user("alice"))
    page = f"/training/{event.id}"
    form = (await browser.get(page)).text
    service_event = session.get(TrainingEvent, event.id)
    service_event.registration_closes_at = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    late = await browser.client.post(f"{page}/register", data={"csrf_token": csrf_of(form)})
    assert late.status_code == 409
    assert "The registration deadline has passed." in late.text and 'role="alert"' in late.text
