"""Project management by the PI: invitations by e-mail (only PIs and operators invite; a link works once,
for the invited address, until it expires), removing members, and the project's API keys."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from jaif.access.models import ApiKey, ProjectMember
from jaif.db.base import utcnow
from jaif.identity.models import OneTimeToken
from tests.integration.identity.conftest import PASSWORD
from tests.support.portal import csrf_of, mail_links


def invited(outbox, email: str) -> str:
    links = mail_links(outbox, email, "/invitations/")
    assert links, f"no invitation was sent to {email}"
    return links[0]


async def test_only_pis_and_operators_invite(api, world):
    pi, member, outsider, op = world.user("pi"), world.user("member"), world.user("outsider"), world.operator()
    lab = world.project(member, pi=pi)
    url = f"/api/v1/projects/{lab.id}/invitations"
    body = {"email": f"new-{uuid.uuid4().hex[:6]}@example.org"}
    assert (await api.as_(member).post(url, json=body)).status_code == 403
    assert (await api.as_(outsider).post(url, json=body)).status_code == 404  # the project stays unknown
    assert (await api.anonymous.post(url, json=body)).status_code == 401
    made = await api.as_(pi).post(url, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["email"] == body["email"] and made.json()["role"] == "member"
    assert "token" not in made.json()
    assert (await api.as_(op).post(url, json={"email": body["email"], "role": "pi"})).status_code == 201
    pending = (await api.as_(pi).get(url)).json()
    assert [(i["email"], i["role"]) for i in pending] == [(body["email"], "pi")]  # the second replaced the first
    assert (await api.as_(member).get(url)).status_code == 403


async def test_inviting_a_member_again_or_a_bad_address_is_refused(api, world):
    pi, member = world.user("pi"), world.user("member")
    lab = world.project(member, pi=pi)
    client = api.as_(pi)
    url = f"/api/v1/projects/{lab.id}/invitations"
    again = await client.post(url, json={"email": member.email.upper()})
    assert again.status_code == 409
    bad = await client.post(url, json={"email": "nobody"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "email"
    assert (await client.post(url, json={"email": "a@b.org", "role": "owner"})).status_code == 400


async def test_a_signed_in_user_accepts_once(outbox, api, world, with_password, browsers, factory, session):
    pi = world.user("pi")
    ada = with_password(world.user("ada"))
    lab = world.project(pi=pi)
    await api.as_(pi).post(f"/api/v1/projects/{lab.id}/invitations", json={"email": ada.email})
    link = invited(outbox, ada.email)

    browser = browsers()
    page = await browser.get(link)
    assert page.status_code == 200 and lab.name in page.text and "Sign in" in page.text
    await browser.sign_in(ada.email, PASSWORD)
    accepted = await browser.submit(link, {})
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/projects/{lab.id}/team"
    team = await browser.get(accepted.headers["location"])
    assert team.status_code == 200 and ada.email in team.text
    me = (await browser.get("/api/v1/me")).json()
    assert {"project_id": lab.id, "project_name": lab.name, "role": "member"} in me["projects"]
    assert me["email_verified"] is True  # the link reached the mailbox

    used = await browser.get(link)
    assert used.status_code == 400 and "used already" in used.text


async def test_sign_up_then_join(outbox, api, world, browsers, factory):
    pi = world.user("pi")
    lab = world.project(pi=pi)
    email = f"newcomer-{uuid.uuid4().hex[:6]}@example.org"
    await api.as_(pi).post(f"/api/v1/projects/{lab.id}/invitations", json={"email": email, "role": "pi"})
    link = invited(outbox, email)
    browser = browsers()
    page = await browser.get(link)
    signup = page.text.split('class="button secondary" href="')[1].split('"')[0].replace("&amp;", "&")
    form = await browser.get(signup)
    assert f'value="{email}"' in form.text
    joined = await browser.client.post(
        "/signup",
        data={"email": email, "name": "Newcomer", "password": PASSWORD, "next": link, "csrf_token": csrf_of(form.text)},
    )
    assert joined.status_code == 303 and joined.headers["location"] == link
    accepted = await browser.submit(link, {})
    assert accepted.status_code == 303
    me = (await browser.get("/api/v1/me")).json()
    assert me["roles"] == ["user", "pi"]


async def test_another_address_cannot_use_the_link(outbox, api, world, with_password, browsers, factory):
    pi = world.user("pi")
    eve = with_password(world.user("eve"))
    lab = world.project(pi=pi)
    email = f"bob-{uuid.uuid4().hex[:6]}@example.org"
    await api.as_(pi).post(f"/api/v1/projects/{lab.id}/invitations", json={"email": email})
    link = invited(outbox, email)
    browser = browsers()
    await browser.sign_in(eve.email, PASSWORD)
    page = await browser.get(link)
    assert f"This invitation is for {email}" in page.text
    tried = await browser.client.post(link, data={"csrf_token": csrf_of(page.text)})
    assert tried.status_code == 403
    assert lab.id not in str((await browser.get("/api/v1/me")).json()["projects"])


async def test_expired_and_withdrawn_invitations_do_not_work(
    outbox, api, world, with_password, browsers, factory, session
):
    pi = world.user("pi")
    ada, bob = with_password(world.user("ada")), with_password(world.user("bob"))
    lab = world.project(pi=pi)
    client = api.as_(pi)
    url = f"/api/v1/projects/{lab.id}/invitations"
    await client.post(url, json={"email": ada.email})
    bobs = (await client.post(url, json={"email": bob.email})).json()
    session.execute(
        update(OneTimeToken).where(OneTimeToken.email == ada.email).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    browser = browsers()
    await browser.sign_in(ada.email, PASSWORD)
    assert "expired" in (await browser.get(invited(outbox, ada.email))).text

    assert (await client.delete(f"{url}/{bobs['id']}")).status_code == 204
    other = browsers()
    await other.sign_in(bob.email, PASSWORD)
    assert (await other.get(invited(outbox, bob.email))).status_code == 400
    assert (await client.get(url)).json() == []


async def test_removing_members_and_keeping_a_pi(api, world):
    pi, member, other = world.user("pi"), world.user("member"), world.user("other")
    lab = world.project(member, other, pi=pi)
    base = f"/api/v1/projects/{lab.id}/members"
    listed = (await api.as_(member).get(base)).json()
    assert {m["email"] for m in listed} == {pi.email, member.email, other.email}
    assert (await api.as_(member).delete(f"{base}/{other.user_id}")).status_code == 403
    assert (await api.as_(pi).delete(f"{base}/{other.user_id}")).status_code == 204
    assert (await api.as_(member).delete(f"{base}/{member.user_id}")).status_code == 204  # leaving
    assert (await api.as_(pi).delete(f"{base}/{pi.user_id}")).status_code == 409  # the last PI stays
    assert [m["email"] for m in (await api.as_(pi).get(base)).json()] == [pi.email]


async def test_project_keys_for_pis_and_operators_only(api, world, session):
    pi, member, outsider, op = world.user("pi"), world.user("member"), world.user("outsider"), world.operator()
    lab = world.project(member, pi=pi)
    url = f"/api/v1/projects/{lab.id}/keys"
    made = await api.as_(pi).post(url, json={"name": "notebook", "rpm_limit": 60})
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("jaif-") and key["prefix"] == key["key"][:13] and key["user_id"] == pi.user_id
    listed = (await api.as_(pi).get(url)).json()
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    assert (await api.as_(member).get(url)).status_code == 403
    assert (await api.as_(member).post(url, json={})).status_code == 403
    assert (await api.as_(outsider).get(url)).status_code == 404
    assert (await api.as_(op).get(url)).status_code == 200
    assert (await api.as_(member).delete(f"{url}/{key['id']}")).status_code == 403
    assert (await api.as_(pi).delete(f"{url}/{key['id']}")).status_code == 204
    assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == key["id"])) is not None
    other = world.project(pi=outsider)
    assert (await api.as_(pi).delete(f"/api/v1/projects/{other.id}/keys/{key['id']}")).status_code == 404


async def test_the_team_page_invites_and_its_keys_page_shows_a_new_key_once(
    outbox, api, world, with_password, browsers, factory, session
):
    pi, member = with_password(world.user("pi")), world.user("member")
    lab = world.project(member, pi=pi)
    browser = browsers()
    await browser.sign_in(pi.email, PASSWORD)
    page = f"/projects/{lab.id}/team"
    bad = await browser.submit(f"{page}/invitations", {"email": "not-an-address", "role": "member"}, page=page)
    assert bad.status_code == 400 and 'id="f-email-error"' in bad.text and 'value="not-an-address"' in bad.text
    sent = await browser.submit(f"{page}/invitations", {"email": "carol@example.org", "role": "member"}, page=page)
    assert sent.status_code == 303
    assert invited(outbox, "carol@example.org")
    keys = f"/projects/{lab.id}/keys"  # the project's one keys page, linked from the team page
    assert f'href="{keys}"' in (await browser.get(page)).text
    made = await browser.submit(keys, {"name": "laptop"}, page=keys)
    assert made.status_code == 200
    secret = made.text.split('id="new-key">')[1].split("<")[0]
    assert secret.startswith("jaif-") and secret not in (await browser.get(keys)).text
    removed = await browser.submit(f"{page}/members/{member.user_id}/remove", {}, page=page)
    assert removed.status_code == 303
    assert session.scalar(select(ProjectMember).where(ProjectMember.user_id == member.user_id)) is None


async def test_the_outbox_is_for_operators(api, world, with_password, browsers, factory):
    op, ada = with_password(world.operator()), with_password(world.user("ada"))
    pi = world.user("pi")
    lab = world.project(pi=pi)
    await api.as_(pi).post(f"/api/v1/projects/{lab.id}/invitations", json={"email": "dora@example.org"})
    user_browser = browsers()
    await user_browser.sign_in(ada.email, PASSWORD)
    assert (await user_browser.get("/operator/outbox")).status_code == 403
    assert (await browsers().get("/operator/outbox")).headers["location"] == "/login?next=/operator/outbox"
    op_browser = browsers()
    await op_browser.sign_in(op.email, PASSWORD)
    page = await op_browser.get("/operator/outbox?to=dora@example.org")
    assert page.status_code == 200 and f"Invitation to the project {lab.name}" in page.text


async def test_odd_ids_and_nul_characters_are_refused_not_failed(api, world, browsers):
    """PostgreSQL cannot hold NUL characters: such input must be a 4xx, never a database error."""
    pi = world.user("pi")
    lab = world.project(pi=pi)
    client = api.as_(pi)
    for path in ("/api/v1/projects/%00/keys", f"/api/v1/projects/{lab.id}/keys/%00",
                 f"/api/v1/projects/{lab.id}/members/%00", f"/api/v1/projects/{lab.id}/invitations/%00",
                 "/api/v1/me/tokens/%00", "/api/v1/projects/" + "x" * 5000 + "/members"):
        method = "GET" if path.endswith(("/keys", "/members")) else "DELETE"
        response = await client.request(method, path)
        assert response.status_code == 404, (path, response.text)
    bad = await client.post(f"/api/v1/projects/{lab.id}/invitations", json={"email": "a\x00@example.org"})
    assert bad.status_code == 400
    assert (await client.post("/api/v1/me/tokens", json={"name": "a\x00b"})).status_code == 400
    assert (await client.post("/api/v1/me/tokens", json={"nmae": "typo"})).status_code == 400
    browser = browsers()
    signup = await browser.submit("/signup", {"email": "nul\x00@example.org", "name": "A\x00", "password": "p\x00" * 8,
                                              "organisation_id": "\x00"})
    assert signup.status_code == 400 and 'id="f-name-error"' in signup.text
    login = await browser.submit("/login", {"email": "x\x00@example.org", "password": "\x00"})
    assert login.status_code == 401


async def test_the_last_pi_cannot_leave_and_is_told_why(api, world, with_password, browsers):
    pi = with_password(world.user("pi"))
    lab = world.project(pi=pi)
    browser = browsers()
    await browser.sign_in(pi.email, PASSWORD)
    page = f"/projects/{lab.id}/team"
    left = await browser.submit(f"{page}/members/{pi.user_id}/remove", {}, page=page)
    assert left.status_code == 303 and left.headers["location"] == page
    assert "at least one principal investigator" in (await browser.get(page)).text
