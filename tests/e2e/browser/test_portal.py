"""The portal in a real browser (headless Chromium), against `jaif serve`:

1. a new user signs up, confirms the address through the link in the outbox, applies to the Playground
   call under an organisation of their own naming (which waits until an operator confirms the
   membership) and is allocated on asking again, makes an API key on the keys page, calls the gateway
   with the official `openai` client, and sees the tokens on the usage page;
2. an operator takes a Fast Lane application through technical review: a reviewer with a conflict of
   interest is refused with the reason, another reviewer scores it, the operator accepts, the
   allocation is made;
3. a form with bad input shows the error next to the field and keeps what was typed; a draft typed
   into is saved by the page's script without pressing a button.

Each test leaves a screenshot of its last page in its pytest tmp dir.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from openai import OpenAI

from tests.e2e.browser.conftest import sign_in
from tests.support.databases import one_database
from tests.support.frontdoor import ABSTRACT

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]


def _email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}@example.org"


def _fill_proposal(page, *, title: str, short: str) -> None:
    page.get_by_label("Title of the project").fill(title)
    page.get_by_label("Short name of the project").fill(short)
    page.get_by_label("Domain").fill("language models")
    page.get_by_label("Abstract").fill(ABSTRACT)
    page.get_by_role("button", name="Save and continue").click()


def _apply_to_playground(page, short: str) -> None:
    page.get_by_role("link", name="Apply", exact=True).click()
    page.get_by_role("button", name="Apply to Playground").click()
    _fill_proposal(page, title="Chat assistant for municipal services", short=short)
    page.get_by_label("Organisation the project is carried out at").select_option("new")
    page.get_by_label("Name", exact=True).fill(f"Uni {short}")
    page.get_by_label("Sector").select_option("academia")
    page.get_by_label("Country").fill("DE")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("GPU-hours on local").fill("500")
    page.get_by_label("Inference tokens").fill("200000")
    page.get_by_label("Duration").select_option("1")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("Datasets", exact=True).fill("Public council minutes, no personal data.")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_label("Limited risk").check()
    page.get_by_role("button", name="Save and continue").click()
    assert "Your application is complete" in page.content()
    page.get_by_role("button", name="Submit the application").click()


def _organisation_of(site, email: str) -> str:
    from sqlalchemy import select

    from jaif.access.models import User

    with site.sessions() as session:
        return session.scalar(select(User.organisation_id).where(User.email == email))


def test_a_new_user_signs_up_applies_calls_the_gateway_and_sees_the_usage(site, context, tmp_path):
    page = context.new_page()
    email, short = _email("ada"), f"ada-{uuid.uuid4().hex[:6]}"
    page.goto(site.base + "/signup")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Password").fill("analytical engine 1843")
    page.get_by_role("button", name="Create account").click()
    page.goto(site.mail_link(email, "/verify-email"))
    assert f"{email} is confirmed" in page.content()

    _apply_to_playground(page, short)
    # The organisation is the applicant's own word: the Playground waits until its membership is confirmed
    # (docs/access.md). An operator confirms it; the applicant asks again.
    assert "waits" in page.content() and "is not confirmed yet" in page.content()
    org_id = _organisation_of(site, email)
    with httpx.Client(base_url=site.base, headers={"authorization": f"Bearer {site.token(site.operator[0])}"}) as op:
        confirmed = op.post(f"/api/v1/organisations/{org_id}/members/confirm", json={"email": email})
        assert confirmed.status_code == 200, confirmed.text
    page.get_by_role("button", name="Ask for the automatic review again").click()
    assert f"project {short} has its allocations" in page.content()
    page.get_by_role("link", name=short).click()
    assert "GPU-hours on local" in page.content() and "Inference tokens" in page.content()

    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("Name").fill("notebook")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("jaif-")
    # The Copy button puts the key on the clipboard (issue 14, form polish).
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key

    client = OpenAI(base_url=site.base + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "Hello!"}])
    used = reply.usage.total_tokens
    assert used > 0

    page.get_by_role("link", name="Usage", exact=True).first.click()
    expected = f"<strong>{used:,}</strong> tokens"
    for _ in range(50):  # the gateway writes usage records in batches, every 0.2 s here
        if expected in page.content():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert expected in page.content()
    assert page.locator("svg.chart").first.is_visible()
    page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)


def _submitted_fast_lane(site, *, team: list[str]) -> tuple[str, str]:
    """An application to Fast Lane made and submitted through the REST API; returns its id and title."""
    applicant = _email("ben")
    site.user(applicant)
    token = site.token(applicant)
    title = f"Protein folding {uuid.uuid4().hex[:4]}"
    body = {"call_id": "fast-lane", "title": title, "abstract": ABSTRACT, "domain": "biology",
            "organisation": {"name": f"Bio Lab {title[-4:]}", "sector": "startup", "country": "NL"},
            "team": team, "requested_gpu_hours": {"local": 20000}, "requested_tokens": 0,
            "duration_months": 2, "ai_act_risk": "minimal", "datasets": "PDB structures"}
    with httpx.Client(base_url=site.base, headers={"authorization": f"Bearer {token}"}) as api:
        draft = api.post("/api/v1/applications", json=body)
        assert draft.status_code == 201, draft.text
        submitted = api.post(f"/api/v1/applications/{draft.json()['id']}/submit")
        assert submitted.status_code == 200, submitted.text
    return draft.json()["id"], title


def test_an_operator_takes_a_fast_lane_application_through_technical_review(site, context, tmp_path):
    rita, tom = _email("rita"), _email("tom")
    rita_password = site.user(rita, "reviewer")
    site.user(tom, "reviewer")
    app_id, title = _submitted_fast_lane(site, team=[tom])

    operator = context.new_page()
    sign_in(operator, site, *site.operator)
    operator.get_by_role("link", name="Console").click()
    operator.get_by_role("link", name="Applications", exact=True).click()
    operator.get_by_label("Call").select_option("fast-lane")
    operator.get_by_role("button", name="Filter").click()
    operator.get_by_role("link", name=title).click()

    operator.get_by_label("Reviewer", exact=True).select_option(tom)  # the reviewer pool
    operator.get_by_role("button", name="Assign").click()
    error = operator.locator("#f-reviewer_email-error")
    assert "Conflict of interest" in error.inner_text() and "in the application's team" in error.inner_text()
    assert operator.get_by_label("Reviewer", exact=True).input_value() == tom
    operator.get_by_label("Reviewer", exact=True).select_option(rita)
    operator.get_by_role("button", name="Assign").click()
    assert "is asked for the technical review" in operator.content()
    assert "In technical review" in operator.content()

    reviewer = context.browser.new_context().new_page()
    sign_in(reviewer, site, rita, rita_password)
    reviewer.get_by_role("link", name="Reviews").click()
    reviewer.get_by_role("link", name=title).click()
    reviewer.get_by_label("4 — good").check()
    reviewer.get_by_label("Comment").fill("Feasible plan; the GPU-hours match the model sizes.")
    reviewer.get_by_role("button", name="Submit the review").click()
    assert "Your review is saved" in reviewer.content()
    reviewer.context.close()

    operator.reload()
    operator.get_by_label("Accept", exact=True).check()
    operator.get_by_label("Comment to the applicant").fill("Welcome to the AI Factory.")
    operator.get_by_role("button", name="Record the decision").click()
    assert "The application is allocated" in operator.content()
    assert "by " + rita in operator.content() and "score 4 of 5" in operator.content()
    project = re.search(r'see project <a href="/projects/[0-9a-f]{32}">([^<]+)</a>', operator.content()).group(1)
    operator.get_by_role("link", name="Allocations").first.click()
    operator.get_by_label("Project", exact=True).fill(project)
    operator.get_by_role("button", name="Filter").click()
    assert "GPU-hours on local" in operator.content() and "20,000" in operator.content()
    assert app_id
    operator.screenshot(path=str(tmp_path / "operator.png"), full_page=True)


def test_bad_input_is_shown_next_to_the_field_and_kept(site, context, tmp_path):
    email = _email("cleo")
    password = site.user(email)
    page = context.new_page()
    sign_in(page, site, email, password)
    page.get_by_role("link", name="Apply", exact=True).click()
    page.get_by_role("button", name="Apply to Playground").click()

    page.get_by_label("Title of the project").fill("Typed, never lost")  # the script saves it, no button
    page.locator(".autosave-status").get_by_text("Draft saved at").wait_for()
    saved = page.locator(".autosave-status").inner_text()
    assert re.search(r"Draft saved at \d\d:\d\d:\d\d\.", saved), saved  # 24-hour time, not "5:37:47 PM"
    page.reload()
    assert page.get_by_label("Title of the project").input_value() == "Typed, never lost"

    page.get_by_role("link", name="Resources").click()
    page.get_by_label("GPU-hours on local").fill("lots")
    page.get_by_label("Inference tokens").fill("300000")
    page.get_by_role("button", name="Save and continue").click()
    field = page.get_by_label("GPU-hours on local")
    assert field.input_value() == "lots" and field.get_attribute("aria-invalid") == "true"
    error = page.locator("#f-gpu_hours\\.local-error")
    assert "Enter a number of GPU-hours" in error.inner_text()
    assert "f-gpu_hours.local-error" in field.get_attribute("aria-describedby")
    # next to it: the error follows the input in the same field
    assert page.locator(".field", has=field).locator(".error").inner_text() == error.inner_text()
    assert page.get_by_label("Inference tokens").input_value() == "300000"
    page.screenshot(path=str(tmp_path / "bad-input.png"), full_page=True)
