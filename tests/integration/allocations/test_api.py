"""/api/v1/allocations, /api/v1/organisations and /api/v1/projects through HTTP; and the whole app with
its lifespan, real sessions and a real personal access token."""

from __future__ import annotations

import httpx

from jaif.access import membership
from jaif.access import service as access
from jaif.access.schemas import CLI_ACTOR
from jaif.app import create_app
from jaif.bootstrap import initialise
from jaif.config import InferenceSettings, Settings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.db.migrate import upgrade
from jaif.identity import pats
from tests.support.frontdoor import ABSTRACT
from tests.support.frontdoor_api import bearer, error_of


async def test_allocations(api, session, world):
    org = world.org("Uni A")
    member = world.user(org=org)
    stranger = world.user(org=world.org())
    project = access.create_project(session=session, name="alpha", organisation=org.name)
    access.add_member(session=session, project_name="alpha", email=member.email, role="pi")
    op, mine, theirs = (bearer(session, u) for u in (world.user(role="operator"), member, stranger))

    made = await api.post("/api/v1/allocations", headers=op, json={
        "project_id": project.id, "resource": "tokens", "amount": 2000, "days": 30})
    assert made.status_code == 201, made.text
    allocation = made.json()
    assert (allocation["project_name"], allocation["remaining"], allocation["status"]) == ("alpha", 2000, "active")
    elsewhere = await api.post("/api/v1/allocations", headers=op, json={
        "project_id": project.id, "resource": "gpu_hours", "partition": "booster", "amount": 12.5, "days": 7})
    assert "this site has no partition 'booster'; it has local" in error_of(elsewhere, 400)["message"]
    gpu = await api.post("/api/v1/allocations", headers=op, json={
        "project_id": project.id, "resource": "gpu_hours", "partition": "local", "amount": 12.5, "days": 7})
    assert gpu.status_code == 201
    assert {a["id"] for a in (await api.get("/api/v1/allocations", headers=mine)).json()} == {
        allocation["id"], gpu.json()["id"]
    }
    assert (await api.get("/api/v1/allocations", headers=theirs)).json() == []
    assert error_of(await api.get(f"/api/v1/allocations/{allocation['id']}", headers=theirs), 404)
    assert error_of(await api.get("/api/v1/allocations", params={"project_id": project.id}, headers=theirs), 404)
    assert error_of(await api.post("/api/v1/allocations", headers=mine, json={
        "project_id": project.id, "resource": "tokens", "amount": 1, "days": 1}), 403)
    assert error_of(await api.post("/api/v1/allocations", headers=op, json={
        "project_id": project.id, "resource": "gpu_hours", "amount": 1, "days": 1}), 400)["param"] == "partition"
    assert (await api.get(f"/api/v1/projects/{project.id}", headers=mine)).json()["token_quota"] == 2000
    revoked = await api.post(f"/api/v1/allocations/{allocation['id']}/revoke", headers=op)
    assert revoked.json()["status"] == "revoked"
    assert error_of(await api.post(f"/api/v1/allocations/{allocation['id']}/revoke", headers=op), 409)
    assert (await api.get(f"/api/v1/projects/{project.id}", headers=mine)).json()["token_quota"] == 0
    swept = await api.post("/api/v1/allocations/sweep", headers=op)
    assert swept.status_code == 200 and set(swept.json()) == {"expired", "exhausted", "projects_synced"}
    filtered = await api.get("/api/v1/allocations", params={"status": "revoked"}, headers=mine)
    assert [a["id"] for a in filtered.json()] == [allocation["id"]]


async def test_organisations_and_projects(api, session, world):
    operator = world.user(role="operator")
    pi = world.user(email="pi@fz.example")
    op, as_pi = bearer(session, operator), bearer(session, pi)
    org = await api.post("/api/v1/organisations", json={"name": "FZ", "sector": "public", "country": "de"},
                         headers=op)
    assert org.status_code == 201 and org.json()["country"] == "DE"
    assert error_of(await api.post("/api/v1/organisations", json={"name": "FZ", "sector": "public",
                                                                  "country": "DE"}, headers=op), 409)
    assert error_of(await api.post("/api/v1/organisations", json={"name": "X", "sector": "public",
                                                                  "country": "DE"}, headers=as_pi), 403)
    project = await api.post("/api/v1/projects", headers=op, json={
        "name": "climate", "organisation_id": org.json()["id"], "pi_email": pi.email, "token_quota": 5000})
    assert project.status_code == 201, project.text
    assert [p["name"] for p in (await api.get("/api/v1/projects", headers=as_pi)).json()] == ["climate"]
    assert [o["name"] for o in (await api.get("/api/v1/organisations", headers=as_pi)).json()] == ["FZ"]
    assert (await api.get(f"/api/v1/organisations/{org.json()['id']}", headers=as_pi)).status_code == 200
    outsider = bearer(session, world.user())
    assert (await api.get("/api/v1/projects", headers=outsider)).json() == []
    assert error_of(await api.get(f"/api/v1/projects/{project.json()['id']}", headers=outsider), 404)
    assert error_of(await api.get(f"/api/v1/organisations/{org.json()['id']}", headers=outsider), 404)


async def test_the_whole_app(database_url, tmp_path):
    """create_app with its lifespan, its own sessions per request and a real token: a Playground application."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        initialise(session=session, builtin_models=False)
        org = access.create_organisation(session=session, name="Uni", sector="academia", country="AT")
        user, _password = access.create_user(session=session, email="pi@uni.example")
        # A verified address in the organisation's registered domain: a confirmed member, whom the
        # Playground grants at once (docs/access.md).
        membership.add_domain(session=session, actor=CLI_ACTOR, organisation_id=org.id, domain="uni.example")
        user.organisation_id, user.email_verified_at = org.id, utcnow()
        _row, token = pats.create(session=session, user_id=user.id)
    engine.dispose()
    settings = Settings(database_url=database_url, data_dir=tmp_path / "var",
                        inference=InferenceSettings(builtin_models=False))
    app = create_app(settings)
    me = {"authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://jaif.test") as client:
            draft = await client.post("/api/v1/applications", headers=me, json={
                "call_id": "playground", "title": "Alpine weather", "abstract": ABSTRACT, "domain": "climate",
                "requested_tokens": 1000, "duration_months": 1, "ai_act_risk": "minimal"})
            assert draft.status_code == 201, draft.text
            failed = await client.post(f"/api/v1/applications/{draft.json()['id']}/decision", headers=me,
                                       json={"accept": True})
            assert failed.status_code == 403
            done = await client.post(f"/api/v1/applications/{draft.json()['id']}/submit", headers=me)
            assert done.status_code == 200 and done.json()["state"] == "allocated", done.text
            [project] = (await client.get("/api/v1/projects", headers=me)).json()
            assert project["token_quota"] == 1000
    assert any((tmp_path / "var" / "outbox").glob("*.eml"))
