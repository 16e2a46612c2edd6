"""Issue 9, items 2, 3, 4 and 13: sessions that cannot be forged or replayed, links only to the configured
address, no tokens or keys for unconfirmed accounts, no live one-time links kept in the notifications table.
Real database; the app over httpx's ASGI transport; cookies signed exactly as Starlette signs them."""

from __future__ import annotations

import json
import os
import stat
from base64 import b64encode

import httpx
import pytest
from itsdangerous import TimestampSigner
from pydantic import ValidationError
from sqlalchemy import select

from jaif.access.models import User
from jaif.app import create_app
from jaif.config import PLACEHOLDER_SECRET, Settings
from jaif.identity import pats
from jaif.identity import service as identity
from jaif.identity.models import PersonalAccessToken
from jaif.notify.models import Notification
from jaif.support import service as support
from jaif.web.middleware import SESSION_COOKIE
from tests.integration.identity.conftest import PASSWORD
from tests.support.portal import BASE, Browser, csrf_of, mail_links
from tests.support.services import app_settings


def forged_cookie(secret: str, data: dict) -> str:
    """A session cookie as Starlette's SessionMiddleware writes it, signed with ``secret``."""
    return TimestampSigner(secret).sign(b64encode(json.dumps(data).encode())).decode()


def replay(api, cookie: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE,
                             cookies={SESSION_COOKIE: cookie})


async def me_status(api, cookie: str) -> int:
    async with replay(api, cookie) as client:
        return (await client.get("/api/v1/me")).status_code


# --- item 2: the secret, forged and replayed cookies -----------------------------------------------------


def test_the_placeholder_and_weak_secrets_are_refused_in_every_environment(monkeypatch):
    for environment in ("development", "production"):
        monkeypatch.setenv("JAIF_ENVIRONMENT", environment)
        for weak in (PLACEHOLDER_SECRET, "", "   ", "short-but-not-empty"):
            monkeypatch.setenv("JAIF_WEB__SECRET_KEY", weak)
            with pytest.raises(ValidationError, match="SECRET_KEY"):
                Settings()
    monkeypatch.setenv("JAIF_WEB__SECRET_KEY", "k" * 40)
    assert Settings().web.secret_key.get_secret_value() == "k" * 40


def test_a_default_install_generates_a_private_secret_once(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'j.db'}")
    assert settings.web.secret_key is None
    create_app(settings)
    key_file = tmp_path / "var" / "secret_key"
    first = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32 and first != PLACEHOLDER_SECRET
    create_app(settings)
    assert key_file.read_text().strip() == first  # kept, not regenerated
    os.chmod(key_file, 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        create_app(settings)


async def test_a_cookie_forged_with_the_placeholder_or_without_a_session_is_refused(api, world, tmp_path):
    operator = world.operator()
    assert await me_status(api, forged_cookie(PLACEHOLDER_SECRET, {"user_id": operator.user_id})) == 401
    # Even with the real secret, a cookie that names a user but no live server session is no one.
    real = (tmp_path / "var" / "secret_key").read_text().strip()
    for data in ({"user_id": operator.user_id}, {"user_id": operator.user_id, "stamp": "x"},
                 {"user_id": operator.user_id, "sid": "made-up"}):
        assert await me_status(api, forged_cookie(real, data)) == 401, data


async def signed_in_cookie(browsers, actor) -> tuple[Browser, str]:
    browser = browsers()
    await browser.sign_in(actor.email, PASSWORD)
    cookie = browser.client.cookies[SESSION_COOKIE]
    return browser, cookie


async def test_a_cookie_replayed_after_sign_out_is_refused(api, browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser, cookie = await signed_in_cookie(browsers, ada)
    assert await me_status(api, cookie) == 200
    assert (await browser.submit("/logout", {}, page="/account")).status_code == 303
    assert await me_status(api, cookie) == 401


async def test_a_password_change_ends_every_other_session(api, browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser, cookie = await signed_in_cookie(browsers, ada)
    _other, elsewhere = await signed_in_cookie(browsers, ada)
    changed = await browser.submit("/account/password", {"current_password": PASSWORD,
                                                         "password": "a brand new passphrase"}, page="/account")
    assert changed.status_code == 303
    assert await me_status(api, cookie) == 401 and await me_status(api, elsewhere) == 401
    assert (await browser.get("/api/v1/me")).status_code == 200  # this browser has a new session


async def test_a_password_reset_ends_sessions_and_tokens(api, outbox, browsers, world, with_password, session):
    ada = with_password(world.user("ada"))
    _browser, cookie = await signed_in_cookie(browsers, ada)
    _row, token = pats.create(session=session, user_id=ada.user_id)
    session.flush()
    await browsers().submit("/forgot-password", {"email": ada.email})
    [link] = mail_links(outbox, ada.email, "/reset-password")
    resetter = browsers()
    done = await resetter.submit("/reset-password", {"token": link.split("token=")[1], "password": "another pass 123"},
                                 page=link)
    assert done.status_code == 303
    assert await me_status(api, cookie) == 401
    assert (await api.anonymous.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_a_role_change_or_deactivation_ends_sessions(api, browsers, world, with_password, session):
    ada = with_password(world.user("ada"))
    _b, cookie = await signed_in_cookie(browsers, ada)
    identity.set_role(session=session, email=ada.email, role="reviewer")
    session.flush()
    assert await me_status(api, cookie) == 401
    _b2, cookie2 = await signed_in_cookie(browsers, ada)
    assert await me_status(api, cookie2) == 200
    identity.set_active(session=session, email=ada.email, active=False)
    session.flush()
    assert await me_status(api, cookie2) == 401


def test_the_support_thread_shows_names_not_ids_to_users(session, world, mailer):
    user, operator = world.user("ada"), world.operator("olga")
    created = support.create_request(session=session, actor=user, mailer=mailer, category="other",
                                     subject="Help", body="Please")
    support.add_reply(session=session, actor=operator, mailer=mailer, request_id=created.id, body="On it")
    seen = support.get_request(session=session, actor=user, request_id=created.id)
    text = seen.model_dump_json()
    assert operator.user_id not in text and operator.email not in text
    assert seen.thread[0].author.name == "Olga" and seen.thread[0].author.id is None
    as_operator = support.get_request(session=session, actor=operator, request_id=created.id)
    assert as_operator.thread[0].author.id == operator.user_id  # operators assign by id


async def test_project_members_see_names_not_ids_of_each_other(api, world):
    pi, ada, bob = world.user("pi"), world.user("ada"), world.user("bob")
    lab = world.project(ada, bob, pi=pi)
    as_member = (await api.as_(ada).get(f"/api/v1/projects/{lab.id}/members")).json()
    ids = {m["email"]: m["user_id"] for m in as_member}
    assert ids[bob.email] is None and ids[pi.email] is None and ids[ada.email] == ada.user_id
    as_pi = (await api.as_(pi).get(f"/api/v1/projects/{lab.id}/members")).json()
    assert {m["user_id"] for m in as_pi} == {pi.user_id, ada.user_id, bob.user_id}  # the PI removes by id


# --- item 3: links from the configured or served address, trusted hosts ------------------------------


async def test_a_hostile_host_header_never_reaches_a_reset_link(browsers, world, with_password, outbox):
    ada = with_password(world.user("ada"))
    browser = browsers()
    form = await browser.get("/forgot-password")

    asked = await browser.client.post("/forgot-password", headers={"host": "evil.example"},
                                      data={"email": ada.email, "csrf_token": csrf_of(form.text)})
    assert asked.status_code == 200
    bodies = [p.read_text() for p in outbox.glob("*.eml")]
    assert bodies and not any("evil.example" in b for b in bodies)
    assert any("http://127.0.0.1:8000/reset-password?token=" in b for b in bodies)


async def test_with_a_public_url_other_hosts_are_refused(migrated_url, tmp_path):
    settings = app_settings(migrated_url, tmp_path).model_copy(
        update={"identity": Settings().identity.model_copy(update={"public_url": "https://factory.example"})}
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://factory.example") as c:
        assert (await c.get("/forgot-password")).status_code == 200
        assert (await c.get("/forgot-password", headers={"host": "evil.example"})).status_code == 400
        assert (await c.get("/forgot-password", headers={"host": "127.0.0.1:8000"})).status_code == 200


# --- item 4: no tokens or keys without a confirmed address; confirmations end what came before --------


async def test_an_unconfirmed_account_holds_no_token_or_key(api, world, session):
    ada = world.user("ada", verified=False)
    with pytest.raises(Exception, match="Confirm your e-mail address first"):
        pats.create(session=session, user_id=ada.user_id)
    from jaif.access import service as access

    project = world.project(pi=ada)
    with pytest.raises(Exception, match="is not confirmed yet"):
        access.create_api_key(session=session, project_name=project.name, user_email=ada.email)
    # A token made while the address was confirmed stops working if the account is unconfirmed.
    bob = world.user("bob")
    _row, secret = pats.create(session=session, user_id=bob.user_id)
    session.get(User, bob.user_id).email_verified_at = None
    session.flush()
    refused = await api.anonymous.get("/api/v1/me", headers={"authorization": f"Bearer {secret}"})
    assert refused.status_code == 401 and "Confirm your e-mail address" in refused.json()["error"]["message"]


async def test_the_pre_hijack_ends_at_verification(api, browsers, outbox, session):
    """An attacker signs up with the victim's address; the victim's confirmation ends the attacker's
    session, and the attacker could make no token meanwhile."""
    attacker = browsers()
    email = "victim-prehijack@example.org"
    await attacker.submit("/signup", {"email": email, "name": "Not Victim", "password": PASSWORD})
    assert (await attacker.get("/api/v1/me")).status_code == 200
    token = csrf_of((await attacker.get("/")).text)
    made = await attacker.client.post("/api/v1/me/tokens", json={"name": "mine"}, headers={"X-CSRF-Token": token})
    assert made.status_code == 403 and "Confirm your e-mail address" in made.text
    [link] = mail_links(outbox, email, "/verify-email")
    victim = browsers()
    assert (await victim.get(link)).status_code == 303
    assert (await attacker.get("/api/v1/me")).status_code == 401


def test_linking_by_single_sign_on_revokes_earlier_tokens_and_sessions(session, world):
    from jaif.identity import sessions, sso
    from tests.integration.identity.test_sso_service import PROVIDER, claims

    ada = world.user("ada")
    _row, _secret = pats.create(session=session, user_id=ada.user_id)
    sid = sessions.start(session=session, user_id=ada.user_id, max_age_s=600)
    sso.sign_in(session=session, provider=PROVIDER, claims=claims(ada.email, verified=True))
    assert sessions.user_of(session=session, session_id=sid) is None
    tokens = session.scalars(select(PersonalAccessToken).where(PersonalAccessToken.user_id == ada.user_id)).all()
    assert tokens and all(t.revoked_at is not None for t in tokens)


# --- item 13: no live one-time link in the notifications table --------------------------------------------


async def test_notifications_keep_no_live_one_time_link(api, browsers, outbox, world, with_password, session, factory):
    email = "carla-links@example.org"
    newcomer = browsers()
    await newcomer.submit("/signup", {"email": email, "name": "Carla", "password": PASSWORD})
    ada = with_password(world.user("ada"))
    await browsers().submit("/forgot-password", {"email": ada.email})
    pi = world.user("pi")
    project = world.project(pi=pi)
    invited = await api.as_(pi).post(f"/api/v1/projects/{project.id}/invitations",
                                     json={"email": "dora-links@example.org", "role": "member"})
    assert invited.status_code in (200, 201), invited.text
    links = (mail_links(outbox, email, "/verify-email") + mail_links(outbox, ada.email, "/reset-password")
             + mail_links(outbox, "dora-links@example.org", "/invitations/"))
    assert len(links) == 3
    secrets = [link.split("token=")[-1].split("/invitations/")[-1] for link in links]
    with factory() as s:
        bodies = [n.body for n in s.scalars(select(Notification))]
    assert sum("[withheld]" in b for b in bodies) >= 3
    assert not any(secret in body for secret in secrets for body in bodies)
    operator = with_password(world.operator())
    op_browser = browsers()
    await op_browser.sign_in(operator.email, PASSWORD)
    page = (await op_browser.get("/operator/outbox")).text
    assert "[withheld]" in page and not any(secret in page for secret in secrets)
    # The outbox is a page of the console: its navigation, with the outbox marked (issue 14, form polish).
    assert '<nav class="subnav" aria-label="Operator console">' in page
    assert 'href="/operator/outbox" aria-current="page"' in page
    folder = outbox.stat()
    assert stat.S_IMODE(folder.st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in outbox.glob("*.eml"))

