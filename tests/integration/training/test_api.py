"""/api/v1/training-events through the ASGI app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def event_body(**fields) -> dict:
    starts = datetime.now(UTC) + timedelta(days=3)
    return {
        "title": "Fine-tuning with LoRA",
        "description": "Hands-on, bring a laptop.",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=4)).isoformat(),
        "location": "online",
        "seats": 1,
    } | fields


async def test_register_waitlist_cancel_and_promotion(api, world):
    alice, bob, op = world.user("alice"), world.user("bob"), world.operator()
    as_alice, as_bob, as_op = api.as_(alice), api.as_(bob), api.as_(op)
    assert (await as_alice.post("/api/v1/training-events", json=event_body())).status_code == 403
    created = await as_op.post("/api/v1/training-events", json=event_body())
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["seats_left"] == 1 and event["registration_open"] is True
    url = f"/api/v1/training-events/{event['id']}/registrations"
    seat = await as_alice.post(url)
    assert seat.status_code == 201 and seat.json()["status"] == "registered"
    wait = await as_bob.post(url)
    assert wait.json()["status"] == "waitlisted" and wait.json()["waitlist_position"] == 1
    assert (await as_alice.post(url)).status_code == 409
    assert len((await as_op.get(url)).json()) == 2
    assert [r["user"]["id"] for r in (await as_bob.get(url)).json()] == [bob.user_id]
    # Bob cannot cancel Alice's seat; Alice can, and Bob moves up.
    assert (await as_bob.delete(f"{url}/{seat.json()['id']}")).status_code == 404
    assert (await as_alice.delete(f"{url}/{seat.json()['id']}")).json()["status"] == "cancelled"
    shown = (await as_bob.get(f"/api/v1/training-events/{event['id']}")).json()
    assert shown["my_registration"]["status"] == "registered" and shown["seats_left"] == 0


async def test_deadline_and_validation(api, world):
    as_alice, as_op = api.as_(world.user("alice")), api.as_(world.operator())
    closed_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    event = (await as_op.post("/api/v1/training-events", json=event_body(registration_closes_at=closed_at))).json()
    late = await as_alice.post(f"/api/v1/training-events/{event['id']}/registrations")
    assert late.status_code == 409 and late.json()["error"]["code"] == "registration_closed"
    backwards = event_body(ends_at=datetime.now(UTC).isoformat())
    refused = await as_op.post("/api/v1/training-events", json=backwards)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "ends_at"
    assert (await as_op.post("/api/v1/training-events", json=event_body(seats=0))).status_code == 400
    assert (await as_op.patch(f"/api/v1/training-events/{event['id']}", json={"seats": 5})).json()["seats"] == 5
    assert (await as_alice.get("/api/v1/training-events/unknown")).status_code == 404
    listed = (await as_alice.get("/api/v1/training-events")).json()
    assert [e["id"] for e in listed] == [event["id"]]
