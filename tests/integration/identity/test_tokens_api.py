"""Personal access tokens and /api/v1/me: created once and shown once, stored as SHA-256 only, refused
when revoked or expired, and never a way into another user's data."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select, update

from jaif.access import service as access
from jaif.access.models import ProjectMember
from jaif.db.base import utcnow
from jaif.identity import pats
from jaif.identity.models import PersonalAccessToken
from tests.integration.identity.conftest import PASSWORD
from tests.support.portal import csrf_of


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_api_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def test_me_shows_roles_organisation_and_memberships(api, world, session):
    ada, bob = world.user("ada"), world.user("bob")
    lab = world.project(bob, pi=ada)
    other = world.project(bob)
    client = api.as_(ada)
    me = (await client.get("/api/v1/me")).json()
    assert me["id"] == ada.user_id and me["email"] == ada.email
    assert me["role"] == "user" and me["roles"] == ["user", "pi"]
    assert me["projects"] == [{"project_id": lab.id, "project_name": lab.name, "role": "pi"}]
    assert other.id not in str(me)
    bobs = (await api.as_(bob).get("/api/v1/me")).json()
    assert {p["project_id"] for p in bobs["projects"]} == {lab.id, other.id} and bobs["roles"] == ["user"]


async def test_create_list_and_revoke_tokens_through_the_api(api, world, session):
    ada = world.user("ada")
    client = api.as_(ada)
    created = await client.post("/api/v1/me/tokens", json={"name": "laptop", "expires_in_days": 30})
    assert created.status_code == 201, created.text
    body = created.json()
    token = body["token"]
    assert token.startswith("jaifpat-") and body["prefix"] == token[:16] and body["name"] == "laptop"
    assert body["expires_at"] is not None

    # Only the SHA-256 is stored; the token itself appears nowhere in the table.
    row = session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.id == body["id"]))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.token_hash, row.prefix, row.name}

    listed = (await client.get("/api/v1/me/tokens")).json()
    assert body["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)

    fresh = api.anonymous
    assert (await fresh.get("/api/v1/me", headers=bearer(token))).json()["email"] == ada.email
    assert (await client.delete(f"/api/v1/me/tokens/{body['id']}")).status_code == 204
    assert_api_error(await fresh.get("/api/v1/me", headers=bearer(token)), 401, "revoked_token")


async def test_expired_unknown_and_malformed_tokens_are_refused_with_401(api, world, session):
    ada = world.user("ada")
    row, token = pats.create(session=session, user_id=ada.user_id, name="old")
    session.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.id == row.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    client = api.anonymous
    assert_api_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "expired_token")
    assert_api_error(await client.get("/api/v1/me", headers=bearer("jaifpat-" + "x" * 43)), 401)
    assert_api_error(await client.get("/api/v1/me", headers={"authorization": "Basic abc"}), 401)
    assert_api_error(await client.get("/api/v1/me"), 401)


async def test_a_project_api_key_is_not_a_personal_token(api, world, session):
    ada = world.user("ada")
    lab = world.project(pi=ada)
    _key, secret = access.create_api_key(session=session, project_name=lab.name)
    error = assert_api_error(await api.anonymous.get("/api/v1/me", headers=bearer(secret)), 401, "wrong_token_kind")
    assert "/v1" in error["message"]


async def test_a_users_token_never_reaches_another_users_data(api, world, session):
    ada, bob = world.user("ada"), world.user("bob")
    bobs_token, _secret = pats.create(session=session, user_id=bob.user_id, name="bob's")
    client = api.as_(ada)
    me = (await client.get("/api/v1/me")).json()
    assert me["id"] == ada.user_id and bob.email not in str(me)
    tokens = (await client.get("/api/v1/me/tokens")).json()
    assert bobs_token.id not in {t["id"] for t in tokens}
    assert_api_error(await client.delete(f"/api/v1/me/tokens/{bobs_token.id}"), 404)
    assert_api_error(await client.delete(f"/api/v1/me/tokens/{bobs_token.prefix}"), 404)
    session.refresh(bobs_token)
    assert bobs_token.revoked_at is None


async def test_last_use_is_recorded(api, world, session):
    ada = world.user("ada")
    row, token = pats.create(session=session, user_id=ada.user_id)
    assert row.last_used_at is None
    await api.anonymous.get("/api/v1/me", headers=bearer(token))
    session.expire_all()
    assert session.get(PersonalAccessToken, row.id).last_used_at is not None


async def test_token_input_is_validated(api, world):
    client = api.as_(world.user("ada"))
    assert_api_error(await client.post("/api/v1/me/tokens", json={"expires_in_days": -1}), 400)
    assert_api_error(await client.post("/api/v1/me/tokens", json={"name": "x" * 201}), 400)


async def test_the_account_page_shows_a_new_token_once(browsers, world, with_password, session):
    ada = with_password(world.user("ada"))
    browser = browsers()
    await browser.sign_in(ada.email, PASSWORD)
    bad = await browser.submit("/account/tokens", {"token_name": "ci", "expires_in_days": "soon"}, page="/account")
    assert bad.status_code == 400 and 'id="f-expires_in_days-error"' in bad.text and 'value="ci"' in bad.text
    made = await browser.submit("/account/tokens", {"token_name": "ci", "expires_in_days": "7"}, page="/account")
    assert made.status_code == 200
    secret = made.text.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("jaifpat-")
    page = (await browser.get("/account")).text
    assert secret not in page and secret[:16] in page
    assert (await browser.get("/api/v1/me", headers=bearer(secret))).json()["email"] == ada.email
    [row] = pats.list_for(session=session, user_id=ada.user_id)
    revoked = await browser.client.post(f"/account/tokens/{row.id}/revoke", data={"csrf_token": csrf_of(page)})
    assert revoked.status_code == 303
    assert_api_error(await api_get(browser, secret), 401, "revoked_token")


async def api_get(browser, secret):
    return await browser.client.get("/api/v1/me", headers=bearer(secret))


async def test_membership_changes_show_at_once(api, world, session):
    ada = world.user("ada")
    lab = world.project(ada)
    client = api.as_(ada)
    assert len((await client.get("/api/v1/me")).json()["projects"]) == 1
    session.execute(ProjectMember.__table__.delete().where(ProjectMember.user_id == ada.user_id))
    assert (await client.get("/api/v1/me")).json()["projects"] == []
    assert lab.id
