"""/api/v1/calls, /api/v1/applications and /api/v1/reviews through HTTP, with personal access tokens."""

from __future__ import annotations

from tests.support.frontdoor import ABSTRACT
from tests.support.frontdoor_api import bearer, error_of

COMPLETE = {
    "title": "Speech models for Basque",
    "abstract": ABSTRACT,
    "domain": "speech",
    "requested_gpu_hours": {"booster": 500},
    "requested_tokens": 50_000,
    "duration_months": 1,
    "ai_act_risk": "minimal",
}


async def test_playground_from_draft_to_allocation(api, session, world):
    world.call("playground")
    user = world.user(org=world.org("Uni Basque", country="ES"))
    me = bearer(session, user)
    created = await api.post("/api/v1/applications", json={"call_id": "playground"}, headers=me)
    assert created.status_code == 201, created.text
    draft = created.json()
    assert draft["state"] == "draft" and draft["allowed_actions"] == ["update", "submit", "delete", "withdraw"]
    url = f"/api/v1/applications/{draft['id']}"
    problems = (await api.get(f"{url}/problems", headers=me)).json()
    assert {p["field"] for p in problems} >= {"title", "abstract", "ai_act_risk"}
    for field, value in COMPLETE.items():  # autosave, one field at a time
        saved = await api.patch(url, json={field: value}, headers=me)
        assert saved.status_code == 200 and saved.json()[field] == value
    assert (await api.get(f"{url}/problems", headers=me)).json() == []
    submitted = await api.post(f"{url}/submit", headers=me)
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["state"] == "allocated" and body["time_to_access"]["within_target"] is True
    assert [e["to_state"] for e in body["events"]] == ["draft", "submitted", "accepted", "allocated"]
    assert [e["actor"] for e in body["events"]] == ["you", "you", "automatic", "automatic"]
    projects = (await api.get("/api/v1/projects", headers=me)).json()
    assert [(p["id"], p["token_quota"], p["members"][0]["role"]) for p in projects] == [
        (body["project_id"], 50_000, "pi")
    ]
    allocations = (await api.get("/api/v1/allocations", params={"project_id": body["project_id"]}, headers=me)).json()
    assert sorted(a["resource"] for a in allocations) == ["gpu_hours", "tokens"]
    [summary] = (await api.get("/api/v1/applications", params={"state": "allocated"}, headers=me)).json()
    assert summary["id"] == draft["id"] and summary["organisation_name"] == "Uni Basque"


async def test_fast_lane_with_technical_review(api, session, world):
    world.call("fast-lane")
    applicant = world.user(org=world.org())
    reviewer = world.user(role="reviewer", org=world.org(), email="reviewer@hpc.example")
    operator = world.user(role="operator")
    me, rev, op = bearer(session, applicant), bearer(session, reviewer), bearer(session, operator)
    draft = (await api.post("/api/v1/applications", json={"call_id": "fast-lane", **COMPLETE}, headers=me)).json()
    url = f"/api/v1/applications/{draft['id']}"
    assert (await api.post(f"{url}/submit", headers=me)).json()["state"] == "submitted"
    assert (await api.get(url, headers=rev)).status_code == 404
    assigned = await api.post("/api/v1/reviews", json={"application_id": draft["id"], "stage": "technical",
                                                       "reviewer_email": reviewer.email}, headers=op)
    assert assigned.status_code == 201, assigned.text
    [review] = (await api.get("/api/v1/reviews", params={"pending": True}, headers=rev)).json()
    assert review["application_id"] == draft["id"]
    assert (await api.get(url, headers=rev)).json()["allowed_actions"] == ["review"]
    scored = await api.post(f"/api/v1/reviews/{review['id']}/submit", json={"score": 5, "comment": "Ready"},
                            headers=rev)
    assert scored.status_code == 200 and scored.json()["score"] == 5
    decided = await api.post(f"{url}/decision", json={"accept": True, "comment": "Go", "tokens": 10_000}, headers=op)
    assert decided.status_code == 200 and decided.json()["state"] == "allocated"
    mine = (await api.get(url, headers=me)).json()
    assert mine["reviews"] == [{"id": None, "application_id": None, "application_title": None,
                                "reviewer_email": None, "stage": "technical", "score": 5, "comment": "Ready",
                                "assigned_at": None, "submitted_at": mine["reviews"][0]["submitted_at"]}]
    assert "reviewer@hpc.example" not in (await api.get(url, headers=me)).text
    tta = (await api.get("/api/v1/calls/fast-lane/time-to-access")).json()
    assert tta["allocated"] == 1 and tta["within_target"] == 1.0


async def test_errors(api, session, world):
    world.call("fast-lane")
    applicant, other = world.user(org=world.org()), world.user(org=world.org())
    operator = world.user(role="operator")
    me, them, op = bearer(session, applicant), bearer(session, other), bearer(session, operator)
    error = error_of(await api.get("/api/v1/applications"), 401)
    assert error["type"] == "authentication_error"
    draft = (await api.post("/api/v1/applications", json={"call_id": "fast-lane", "title": "T"}, headers=me)).json()
    url = f"/api/v1/applications/{draft['id']}"
    refused = error_of(await api.post(f"{url}/submit", headers=me), 400)
    assert refused["code"] == "submission_refused" and refused["param"] == "abstract"
    assert "abstract:" in refused["message"] and "ai_act_risk:" in refused["message"]
    assert error_of(await api.get(url, headers=them), 404)["code"] == "not_found"
    assert error_of(await api.patch(url, json={"title": "x"}, headers=them), 404)
    assert error_of(await api.post(f"{url}/decision", json={"accept": True}, headers=me), 403)
    assert error_of(await api.post(f"{url}/decision", json={"accept": True}, headers=op), 409)["param"] == "state"
    assert error_of(await api.patch(url, json={"requested_tokens": -1}, headers=me), 400)
    assert error_of(await api.patch(url, json={"surprise": 1}, headers=me), 400)
    assert error_of(await api.post("/api/v1/applications", json={"call_id": "nope"}, headers=me), 404)
    assert error_of(await api.post("/api/v1/calls", json={"slug": "x", "name": "x", "kind": "custom"}, headers=me),
                    403)
    colleague = world.user(role="reviewer", org=applicant.organisation)
    await api.patch(url, json={k: v for k, v in COMPLETE.items() if k != "duration_months"} | {"duration_months": 2},
                    headers=me)
    assert (await api.post(f"{url}/submit", headers=me)).status_code == 200
    conflict = error_of(await api.post("/api/v1/reviews", json={"application_id": draft["id"], "stage": "technical",
                                                               "reviewer_email": colleague.email}, headers=op), 409)
    assert conflict["code"] == "conflict_of_interest" and "applicant's organisation" in conflict["message"]
    assert (await api.delete(url, headers=me)).status_code == 409
    assert (await api.post(f"{url}/withdraw", headers=me)).json()["state"] == "withdrawn"


async def test_calls(api, session, world):
    world.call("playground")
    listed = await api.get("/api/v1/calls")
    assert listed.status_code == 200 and {c["slug"] for c in listed.json()} == {"playground", "fast-lane",
                                                                               "large-scale"}
    op = bearer(session, world.user(role="operator"))
    created = await api.post("/api/v1/calls", headers=op, json={
        "slug": "sme-inference", "name": "Inference for SMEs", "kind": "inference_only", "review_mode": "automatic",
        "offered_tokens": 10**9, "max_tokens": 10**7, "eligible_sectors": ["sme", "startup"],
        "durations_months": [3], "target_days_to_access": 1})
    assert created.status_code == 201, created.text
    changed = await api.patch("/api/v1/calls/sme-inference", json={"is_active": False}, headers=op)
    assert changed.json()["is_active"] is False and changed.json()["is_open"] is False
    assert "sme-inference" not in {c["slug"] for c in (await api.get("/api/v1/calls")).json()}
    everything = await api.get("/api/v1/calls", params={"include_inactive": True}, headers=op)
    assert "sme-inference" in {c["slug"] for c in everything.json()}
    assert error_of(await api.post("/api/v1/calls", headers=op, json={"slug": "sme-inference", "name": "x",
                                                                       "kind": "custom"}), 409)
    assert error_of(await api.get("/api/v1/calls/none"), 404)


async def test_openapi_documents_the_front_door(api):
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    for path in ("/api/v1/calls", "/api/v1/applications", "/api/v1/applications/{application_id}/submit",
                 "/api/v1/applications/{application_id}/withdraw", "/api/v1/applications/{application_id}/decision",
                 "/api/v1/reviews", "/api/v1/allocations", "/api/v1/organisations", "/api/v1/projects"):
        assert path in paths, path
    submit = paths["/api/v1/applications/{application_id}/submit"]["post"]
    assert submit["tags"] == ["applications"]
    assert submit["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApplicationOut")
    assert submit["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiError")
