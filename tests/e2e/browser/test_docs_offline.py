"""The API documentation in a real browser with the internet cut off (issue 9, item 7): /docs (Swagger UI)
and /redoc load only what jaif serves, break no rule of their Content-Security-Policy, and show the API;
a portal page's own script (the draft autosave) runs under the portal's strict policy."""

from __future__ import annotations

import pytest

from tests.support.databases import one_database

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]


def _offline(context, base: str) -> list[str]:
    """Refuse every request that leaves ``base``; returns the list they are recorded in."""
    elsewhere: list[str] = []

    def route(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return elsewhere


def _violations(page) -> list[str]:
    """Console errors, which is where Chromium reports what a Content-Security-Policy refused."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def test_swagger_ui_and_redoc_work_offline(site, context, tmp_path):
    elsewhere = _offline(context, site.base)
    page = context.new_page()
    errors = _violations(page)
    page.goto(site.base + "/docs")
    page.locator(".swagger-ui .info .title").get_by_text("jaif").wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/chat/completions").first.wait_for()
    page.screenshot(path=str(tmp_path / "docs.png"))
    assert errors == [] and elsewhere == []  # Swagger UI: nothing refused, nothing from elsewhere

    page.goto(site.base + "/redoc")
    page.get_by_text("/v1/chat/completions").first.wait_for()
    page.screenshot(path=str(tmp_path / "redoc.png"))
    assert elsewhere == []
    # ReDoc's footer always tries Redocly's logo from its CDN: the policy refuses it (the image hides
    # itself), which is the policy at work; no script or style of the page may be refused.
    refused = [e for e in errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in e]
    assert refused == [], refused
