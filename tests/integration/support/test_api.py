"""/api/v1/support-requests through the ASGI app, with real personal access tokens."""

from __future__ import annotations


async def test_signing_in_is_required(api):
    response = await api.anonymous.get("/api/v1/support-requests")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_a_user_never_sees_another_projects_request_through_the_api(api, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab_a, lab_b = world.project(alice), world.project(bob)
    as_alice, as_bob = api.as_(alice), api.as_(bob)
    made = await as_bob.post(
        "/api/v1/support-requests",
        json={"category": "scaling", "subject": "NCCL hangs", "body": "On 64 nodes", "project_id": lab_b.id},
    )
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["project_name"] == lab_b.name and request["status"] == "open"
    assert (await as_alice.get("/api/v1/support-requests")).json() == []
    assert (await as_alice.get("/api/v1/support-requests", params={"project_id": lab_b.id})).json() == []
    for attempt in (
        as_alice.get(f"/api/v1/support-requests/{request['id']}"),
        as_alice.post(f"/api/v1/support-requests/{request['id']}/replies", json={"body": "me too"}),
        as_alice.put(f"/api/v1/support-requests/{request['id']}/status", json={"status": "closed"}),
    ):
        response = await attempt
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    # Filing for someone else's project is refused without saying whether it exists.
    refused = await as_alice.post(
        "/api/v1/support-requests",
        json={"category": "other", "subject": "x", "body": "y", "project_id": lab_b.id},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "project_id"
    assert (
        await as_alice.post(
            "/api/v1/support-requests", json={"category": "other", "subject": "x", "body": "y", "project_id": lab_a.id}
        )
    ).status_code == 201


async def test_internal_notes_stay_with_the_operators(api, world):
    alice, op = world.user("alice"), world.operator()
    as_alice, as_op = api.as_(alice), api.as_(op)
    request = (
        await as_alice.post("/api/v1/support-requests", json={"category": "inference", "subject": "s", "body": "b"})
    ).json()
    url = f"/api/v1/support-requests/{request['id']}"
    assert (await as_op.post(url + "/replies", json={"body": "Public answer"})).status_code == 201
    noted = await as_op.post(url + "/replies", json={"body": "Secret note", "internal": True})
    assert [r["body"] for r in noted.json()["thread"]] == ["Public answer", "Secret note"]
    seen = (await as_alice.get(url)).json()
    assert [r["body"] for r in seen["thread"]] == ["Public answer"] and seen["replies"] == 1
    assert "Secret note" not in (await as_alice.get("/api/v1/support-requests")).text
    refused = await as_alice.post(url + "/replies", json={"body": "sneaky", "internal": True})
    assert refused.status_code == 403


async def test_status_and_assignment(api, world):
    alice, op = world.user("alice"), world.operator()
    as_alice, as_op = api.as_(alice), api.as_(op)
    request = (
        await as_alice.post("/api/v1/support-requests", json={"category": "data", "subject": "s", "body": "b"})
    ).json()
    url = f"/api/v1/support-requests/{request['id']}"
    assert (await as_alice.put(url + "/assign", json={"assignee_id": op.user_id})).status_code == 403
    assigned = await as_op.put(url + "/assign", json={"assignee_id": op.user_id})
    assert assigned.json()["assignee"]["id"] == op.user_id and assigned.json()["status"] == "in_progress"
    mine = await as_op.get("/api/v1/support-requests", params={"assignee_id": op.user_id, "status": "in_progress"})
    assert [r["id"] for r in mine.json()] == [request["id"]]
    assert (await as_alice.put(url + "/status", json={"status": "resolved"})).status_code == 409
    closed = await as_alice.put(url + "/status", json={"status": "closed"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"


async def test_bad_input_is_a_400_naming_the_field(api, world):
    as_alice = api.as_(world.user("alice"))
    cases = [
        ({"category": "gardening", "subject": "s", "body": "b"}, "category"),
        ({"category": "other", "subject": "s" * 301, "body": "b"}, "subject"),
        ({"category": "other", "subject": "s", "body": ""}, "body"),
        ({"category": "other", "subject": "nul\u0000", "body": "b"}, "subject"),
        ({"category": "other", "subject": "s", "body": "b", "priority": "urgent"}, "priority"),
    ]
    for body, param in cases:
        response = await as_alice.post("/api/v1/support-requests", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param
    assert (await as_alice.get("/api/v1/support-requests", params={"status": "done"})).status_code == 400
    assert (await as_alice.get("/api/v1/support-requests/%00")).status_code == 404
    for param in ("project_id", "assignee_id"):
        refused = await as_alice.get("/api/v1/support-requests", params={param: "a\x00b"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param
