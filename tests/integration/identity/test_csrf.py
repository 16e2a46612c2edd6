"""CSRF protection on the real app: a form posted without the session's token is refused with 403 and a
page that says what to do; with the token it passes. Only bearer-token API calls are exempt: JSON bodies
from a signed-in browser need the token too."""

from __future__ import annotations

from tests.integration.identity.conftest import PASSWORD
from tests.support.portal import csrf_of


async def test_a_form_without_its_token_is_refused_with_a_clear_page(browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser = browsers()
    await browser.get("/login")  # the session exists and has a token; the post leaves it out
    refused = await browser.client.post("/login", data={"email": ada.email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "Form not accepted" in refused.text and "reload the page" in refused.text
    assert (await browser.get("/api/v1/me")).status_code == 401  # not signed in


async def test_a_wrong_or_foreign_token_is_refused(browsers, world, with_password):
    ada = with_password(world.user("ada"))
    mine, theirs = browsers(), browsers()
    page = await theirs.get("/login")
    await mine.get("/login")
    foreign = await mine.client.post(
        "/login", data={"email": ada.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert foreign.status_code == 403
    wrong = await mine.client.post("/login", data={"email": ada.email, "password": PASSWORD, "csrf_token": "x"})
    assert wrong.status_code == 403
    # A browser without any session (a cross-site post to a first-time visitor) is refused too.
    fresh = browsers()
    assert (await fresh.client.post("/login", data={"email": ada.email, "password": PASSWORD})).status_code == 403


async def test_with_the_token_the_form_passes(browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser = browsers()
    page = await browser.get("/login")
    signed = await browser.client.post(
        "/login", data={"email": ada.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert signed.status_code == 303


async def test_signing_in_starts_a_new_session_with_a_new_token(browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser = browsers()
    before = csrf_of((await browser.get("/login")).text)
    await browser.client.post("/login", data={"email": ada.email, "password": PASSWORD, "csrf_token": before})
    after = csrf_of((await browser.get("/account")).text)
    assert after != before


async def test_multipart_forms_and_the_header_are_checked_too(browsers, world, with_password):
    ada = with_password(world.user("ada"))
    browser = browsers()
    await browser.sign_in(ada.email, PASSWORD)
    token = csrf_of((await browser.get("/account")).text)
    no_token = await browser.client.post("/account/tokens", files={"token_name": (None, "cli")})
    assert no_token.status_code == 403
    with_token = await browser.client.post(
        "/account/tokens", files={"token_name": (None, "cli"), "csrf_token": (None, token)}
    )
    assert with_token.status_code == 200 and "jaifpat-" in with_token.text
    by_header = await browser.client.post(
        "/account/tokens", data={"token_name": "hdr"}, headers={"x-csrf-token": token}
    )
    assert by_header.status_code == 200


async def test_api_calls_of_a_signed_in_browser_need_the_token_json_too(browsers, world, with_password):
    """Issue 9: a JSON body was exempt, so a cookie-authenticated JSON POST needed no token."""
    ada = with_password(world.user("ada"))
    browser = browsers()
    await browser.sign_in(ada.email, PASSWORD)
    unchecked = await browser.client.post("/api/v1/me/tokens", json={"name": "from another site"})
    assert unchecked.status_code == 403
    assert unchecked.json()["error"]["code"] == "csrf_failed"
    token = csrf_of((await browser.get("/account")).text)
    made = await browser.client.post("/api/v1/me/tokens", json={"name": "from the page"},
                                     headers={"x-csrf-token": token})
    assert made.status_code == 201
    token_id = made.json()["id"]
    refused = await browser.client.delete(f"/api/v1/me/tokens/{token_id}")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    allowed = await browser.client.delete(f"/api/v1/me/tokens/{token_id}", headers={"x-csrf-token": token})
    assert allowed.status_code == 204


async def test_bearer_token_calls_are_exempt(api, world):
    client = api.as_(world.user("ada"))
    made = await client.post("/api/v1/me/tokens", json={"name": "x"})  # a JSON POST with a bearer token
    assert made.status_code == 201, made.text
    made = made.json()
    assert (await client.delete(f"/api/v1/me/tokens/{made['id']}")).status_code == 204
