"""Security headers (issue 9, item 7): a Content-Security-Policy without inline script or style, no framing,
nosniff and a referrer policy on portal pages and the portal's API; the OpenAI API's (/v1) own stricter
set; no-store where a secret is shown once; and
/docs and /redoc built from jaif's own files, with no inline script and nothing from another site."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from jaif.web import docs, headers

TEMPLATES = Path(docs.__file__).resolve().parent / "templates"


def assert_secure(response) -> None:
    h = response.headers
    policy = h["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == ["'self'"], policy
    assert directives["default-src"] == ["'self'"] and directives["object-src"] == ["'none'"], policy
    assert directives["frame-ancestors"] == ["'none'"], policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin"


async def test_portal_pages_carry_the_headers(portal, world, api):
    for path in ("/login", "/signup"):
        assert_secure(await api.anonymous.get(path))
    browser = await portal.as_(world.user("ada"))
    page = await browser.get("/")
    assert page.status_code == 200
    assert_secure(page)
    assert page.headers["cache-control"] == "no-store"


async def test_refusals_and_errors_carry_them_too(api):
    assert_secure(await api.anonymous.get("/no/such/page"))
    refused = await api.anonymous.post("/login", data={"email": "a@example.org", "password": "x"})
    assert refused.status_code == 403
    assert_secure(refused)


async def test_api_answers_carry_them_and_are_not_stored(api, world):
    client = api.as_(world.user("ada"))
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert_secure(me)
    assert me.headers["cache-control"] == "no-store"
    made = await client.post("/api/v1/me/tokens", json={"name": "ci"})
    assert made.status_code == 201 and made.json()["token"].startswith("jaifpat-")
    assert made.headers["cache-control"] == "no-store"


async def test_the_openai_apis_answers_carry_the_api_set(api):
    """/v1 answers (JSON, event streams, file contents: never a page) carry OWASP's REST set: framed by no
    one, nosniff, no-store, and a policy under which they load nothing; the portal's own REST API
    (/api/v1) and its pages keep the pages' policy."""
    for path, status in (("/v1/no/such/route", 404), ("/v1/chat/completions", 405), ("/tokenize", 405)):
        answer = await api.anonymous.get(path)  # the router's 404; a hot endpoint's own 405
        assert answer.status_code == status
        h = answer.headers
        assert h["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert (h["x-frame-options"], h["x-content-type-options"]) == ("DENY", "nosniff")
        assert h["cache-control"] == "no-store"
        assert "referrer-policy" not in h
    assert_secure(await api.anonymous.get("/api/v1/me"))


async def test_a_page_that_shows_a_new_key_or_token_is_not_stored(portal, world, session):
    pia = world.user("pia")
    lab = world.project(pi=pia)
    session.commit()
    browser = await portal.as_(pia)
    made = await browser.submit(f"/projects/{lab.id}/keys", {"name": "laptop", "expires_in_days": "30"})
    assert made.status_code == 200 and 'id="new-key">jaif-' in made.text
    assert made.headers["cache-control"] == "no-store"
    assert_secure(made)
    token = await browser.submit("/account/tokens", {"token_name": "cli"}, page="/account")
    assert token.status_code == 200 and "jaifpat-" in token.text
    assert token.headers["cache-control"] == "no-store"


async def test_static_files_may_be_cached_and_are_not_sniffed(api):
    css = await api.anonymous.get("/static/base.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "no-store" not in css.headers.get("cache-control", "")
    assert css.headers["x-content-type-options"] == "nosniff"


def test_no_template_has_inline_script_style_or_handlers():
    """What the policy forbids must not be in the templates, or the portal breaks in the browser."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+\s*=|javascript:", re.I)
    found = []
    for template in TEMPLATES.rglob("*.html"):
        for n, line in enumerate(template.read_text().splitlines(), 1):
            if inline.search(line):
                found.append(f"{template.relative_to(TEMPLATES)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


async def test_docs_use_only_files_jaif_serves(api):
    for path in ("/docs", "/redoc"):
        page = await api.anonymous.get(path)
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert urls, page.text
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = await api.anonymous.get(url)
            assert asset.status_code == 200 and len(asset.content) > 0, url
    swagger = (await api.anonymous.get("/docs")).text
    assert 'data-openapi-url="/openapi.json"' in swagger
    bundle = await api.anonymous.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and "javascript" in bundle.headers["content-type"]
    assert "http://" not in docs.DOCS_CSP and "https://" not in docs.DOCS_CSP
    assert (await api.anonymous.get("/docs/oauth2-redirect")).status_code == 404  # FastAPI's inline-script page


def test_the_policy_is_what_the_docs_say():
    guide = (Path(docs.__file__).resolve().parents[3] / "docs" / "portal.md").read_text()
    assert headers.CSP in guide


async def test_an_unexpected_error_carries_them_too(api, caplog):
    """Starlette answers an unhandled exception from its outermost middleware, outside SecurityHeaders."""

    @api.app.get("/boom-for-test")
    def boom() -> None:
        raise RuntimeError("a bug")

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app, raise_app_exceptions=False),
                               base_url="http://portal.test")
    async with client:
        answer = await client.get("/boom-for-test", headers={"accept": "application/json"})
    assert answer.status_code == 500
    assert "request" in answer.text and "a bug" not in answer.text
    assert_secure(answer)
    assert answer.headers["cache-control"] == "no-store"
