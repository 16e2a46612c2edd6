"""A new user's journey through the portal (issue 14), in a real browser (headless Chromium) against a fresh
`jaif init` and `jaif serve` on the local executor, with no operator stepping in:

1. sign up, and confirm the address through the link in the verification e-mail (the outbox);
2. apply to the Playground call (the empty first step and the AI Act step are refused beside their fields,
   in red) and be granted at once: the address is verified and in the organisation's registered domain;
3. submit the first job to the local partition (every mistake of the form told at once, beside its field)
   and watch it run to completion;
4. make an API key and copy it with the Copy button; call the gateway with it;
5. chat in the browser with the project's model, the answer's tokens charged to the project;
6. see the tokens and the job's GPU-hours on the usage page, download the CSV and read it back;
7. see the energy on the usage page (``_energy_step``).

The site's one-time set-up (``member_organisation``) is what a factory does once for the institutions it
serves: an organisation with its e-mail domain (docs/access.md, "Organisation membership"). Nothing in
the journey waits for an operator.

A second test takes screenshots of the main pages at 1280 × 900 and 390 × 844 (a phone) into its pytest tmp
dir and checks that none is wider than the window, that the Revoke button and the chart labels fit a
phone, and that the operator's navigation stays on one line at 1280 px.
"""

from __future__ import annotations

import csv
import re
import uuid
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

import jaif as jaif_package
from tests.e2e.browser.conftest import TIMEOUT_MS, sign_in
from tests.support.databases import one_database
from tests.support.frontdoor import ABSTRACT
from tests.support.procs import jaif

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database(default_install=True)]

ORGANISATION, DOMAIN = "Journey University", "journey-uni.example"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
RED = "rgb(176, 0, 32)"  # --error in /static/base.css
# Four GPUs for about eight seconds: about 0.01 GPU-hours, so that the usage page's two decimals show it.
SCRIPT = 'echo "journey job $JAIF_JOB_ID"\nfor i in 1 2 3 4; do echo "step $i"; sleep 2; done\n'
CSV_COLUMNS = ["day", "project", "model", "key", "requests", "prompt_tokens", "completion_tokens", "total_tokens"]


@pytest.fixture(scope="module")
def module_env(module_env: dict[str, str]) -> dict[str, str]:
    """The browser tests' environment, with the server's compute loop (job states, the accounting import
    that charges a finished job's GPU-hours and energy) every second instead of every five minutes."""
    return {**module_env, "JAIF_SLURM__SYNC_INTERVAL_S": "1"}


@pytest.fixture(scope="module")
def member_organisation(site) -> str:
    """The site's one-time set-up: an organisation and its e-mail domain, whose verified addresses are
    confirmed members by themselves."""
    jaif(site.env, "org", "create", ORGANISATION, "--sector", "academia", "--country", "DE")
    jaif(site.env, "org", "domain", ORGANISATION, "--add", DOMAIN)
    return ORGANISATION


def _style(locator, prop: str) -> str:
    return locator.evaluate(f"e => getComputedStyle(e).{prop}")


def _continue(page) -> None:
    page.get_by_role("button", name="Save and continue").click()


# --- 1. sign-up ----------------------------------------------------------------------------------------------


def _sign_up(page, site, email: str) -> None:
    page.goto(site.base + "/")
    page.get_by_role("link", name="Create account").click()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Password").fill("analytical engine 1843")
    page.get_by_role("button", name="Create account").click()
    assert f"We sent a link to {email}" in page.content()
    page.goto(site.mail_link(email, "/verify-email"))  # the link in the verification e-mail
    assert f"{email} is confirmed" in page.content()


# --- 2. applying -----------------------------------------------------------------------------------------------


def _proposal(page, short: str) -> None:
    _continue(page)  # nothing filled in: the step stays, each problem beside its field, in red (issue 14)
    title = page.get_by_label("Title of the project")
    assert title.get_attribute("aria-invalid") == "true"
    error = page.locator("#f-title-error")
    assert error.inner_text() == "Give the project a title." and _style(error, "color") == RED
    assert "at least 50 characters" in page.locator("#f-abstract-error").inner_text()
    title.fill("Journey through the AI Factory")
    page.get_by_label("Short name of the project").fill(short)
    page.get_by_label("Domain").fill("language models")
    page.get_by_label("Abstract").fill(ABSTRACT)
    _continue(page)


def _team_resources_data(page) -> None:
    page.get_by_label("Organisation the project is carried out at").select_option("new")
    page.get_by_label("Name", exact=True).fill(ORGANISATION)
    page.get_by_label("Sector").select_option("academia")
    page.get_by_label("Country").fill("DE")
    _continue(page)
    page.get_by_label("GPU-hours on local").fill("2")
    page.get_by_label("Inference tokens").fill("200000")
    page.get_by_label("Duration").select_option("1")
    _continue(page)
    page.get_by_label("Datasets", exact=True).fill("Public council minutes, no personal data.")
    _continue(page)


def _ai_act(page) -> None:
    _continue(page)  # no risk chosen: the group of radio buttons is marked, its error red (issue 14)
    group = page.locator("fieldset#f-ai_act_risk")
    assert group.get_attribute("class") == "invalid" and _style(group, "borderTopColor") == RED
    error = page.locator("#f-ai_act_risk-error")
    assert "assess the ai act risk" in error.inner_text().lower() and _style(error, "color") == RED
    page.get_by_label("Limited risk").check()
    _continue(page)


def _apply_to_playground(page, short: str) -> None:
    page.get_by_role("link", name="Apply", exact=True).click()
    page.get_by_role("button", name="Apply to Playground").click()
    _proposal(page, short)
    _team_resources_data(page)
    _ai_act(page)
    assert "Your application is complete" in page.content()
    page.get_by_role("button", name="Submit the application").click()
    assert f"project {short} has its allocations" in page.content()  # granted at once, nobody stepping in


# --- 3. the first job ------------------------------------------------------------------------------------------


def _first_job(page, short: str) -> str:
    page.get_by_role("link", name="Jobs", exact=True).first.click()
    page.get_by_role("link", name="Submit a job").click()
    page.get_by_label("Project", exact=True).select_option(short)
    page.get_by_label("GPUs per node").fill("99")
    page.get_by_label("Time limit in minutes").fill("100000")
    page.get_by_label("Batch script").fill(SCRIPT)
    page.get_by_role("button", name="Submit the job").click()
    # Every mistake at once, in the form's words, beside its field (issue 14): not "--gpus".
    assert "ask for at most 4 here" in page.locator("#f-gpus-error").inner_text()
    assert "at most 1,440 minutes" in page.locator("#f-time-error").inner_text()
    assert "--gpus" not in page.content() and page.get_by_label("Batch script").input_value().strip() == SCRIPT.strip()
    page.get_by_label("GPUs per node").fill("4")
    page.get_by_label("Time limit in minutes").fill("5")
    page.get_by_role("button", name="Submit the job").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.locator("#job-state").get_by_text("Completed").wait_for(timeout=90_000)  # /static/job.js follows it
    page.locator("#stdout").get_by_text("step 4").wait_for()
    job_id = page.url.rsplit("/", 1)[1]
    assert f"journey job {job_id}" in page.locator("#stdout").inner_text()
    return job_id


# --- 4. an API key, 5. the chat ------------------------------------------------------------------------------


def _api_key(page, context, site, short: str) -> str:
    page.goto(site.base + "/")
    page.get_by_role("link", name=short, exact=True).first.click()
    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("Name").fill("notebook")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("jaif-")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    page.get_by_role("button", name="Copy").click()  # shown once: copied with one click
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key
    return key


def _chat_step(page, site, short: str) -> int:
    """The browser chat: from the navigation, the project and the model (fake-chat on the stand-in upstream),
    a message sent with the keyboard, the answer complete with its charge; returns the tokens charged, which
    the usage step then finds in the project's total."""
    page.get_by_role("link", name="Chat", exact=True).first.click()
    page.wait_for_url(site.base + "/chat")
    page.get_by_label("Project", exact=True).select_option(label=short)
    page.get_by_label("Model", exact=True).select_option("fake-chat")
    page.get_by_role("button", name="Start the conversation").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f]{32}$"))
    box = page.get_by_label("Message", exact=True)
    box.fill("Hello from the journey")
    box.press("Enter")
    usage = page.locator(".msg.assistant").last.locator(".usage")
    usage.wait_for()
    prompt, completion = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:prompt|completion)",
                                                                        usage.inner_text()))
    assert prompt > 0 and completion > 0
    return prompt + completion


def _gateway_call(site, key: str) -> int:
    client = OpenAI(base_url=site.base + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "Hello!"}])
    assert reply.usage.total_tokens > 0
    return reply.usage.total_tokens


# --- 6. usage and its CSV, 7. energy ---------------------------------------------------------------------------


def _gpu_hours_shown(html: str) -> float:
    found = re.search(r"<strong>([\d.,]+)</strong> GPU-hours", html)
    return float(found.group(1).replace(",", "")) if found else 0.0


def _usage(page, used: int) -> None:
    page.get_by_role("link", name="Usage", exact=True).first.click()
    tokens = f"<strong>{used:,}</strong> tokens"
    for _ in range(150):  # usage records are written every 0.2 s; the accounting import runs every second
        if tokens in page.content() and _gpu_hours_shown(page.content()) > 0:
            break
        page.wait_for_timeout(200)
        page.reload()
    assert tokens in page.content()
    assert _gpu_hours_shown(page.content()) > 0, "the finished job's GPU-hours never reached the usage page"


def _csv(page, tmp_path: Path, short: str, used: int) -> None:
    with page.expect_download() as downloading:
        page.locator('a[href^="/usage.csv"]').first.click()
    download = downloading.value
    assert download.suggested_filename.endswith(".csv")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == CSV_COLUMNS
    mine = [r for r in rows if r["project"] == short]
    assert sum(int(r["total_tokens"]) for r in mine) == used
    assert {r["model"] for r in mine} == {"fake-chat"} and all(" (jaif-" in r["key"] for r in mine)
    # The API key made in the journey, and the member's key of the browser chat (docs/chat.md).
    assert {r["key"].split(" (jaif-")[0] for r in mine} == {"notebook", "Chat in the portal"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["day"]) for r in mine)


def _energy_step(page) -> None:
    """The job's energy on the usage page. The energy branch (issue 14) brings it; until it is merged this
    step, the journey's last, is an expected failure, decided by the template (never by what the page
    shows, so that a page losing the energy later fails)."""
    template = Path(jaif_package.__file__).parent / "web" / "templates" / "metering" / "usage.html"
    if "kWh" not in template.read_text(encoding="utf-8"):
        pytest.xfail("the usage page shows no energy before the energy branch is merged")
    text = page.locator("section.usage").first.inner_text()
    figures = [float(f.replace(",", "")) for f in re.findall(r"([\d][\d.,]*)\s*kWh", text)]
    assert any(f > 0 for f in figures) or "< 0.000001 kWh" in text, text


def test_a_new_user_signs_up_applies_runs_a_job_makes_a_key_and_sees_the_usage(site, member_organisation, context,
                                                                                  tmp_path):
    suffix = uuid.uuid4().hex[:6]
    email, short = f"ada-{suffix}@{DOMAIN}", f"journey-{suffix}"
    page = context.new_page()
    _sign_up(page, site, email)
    _apply_to_playground(page, short)
    _first_job(page, short)
    key = _api_key(page, context, site, short)
    chatted = _chat_step(page, site, short)
    used = _gateway_call(site, key) + chatted
    _usage(page, used)
    page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
    _csv(page, tmp_path, short, used)
    _energy_step(page)


# --- the main pages on a desktop and on a phone ----------------------------------------------------------------


def _granted_member(site) -> tuple[str, str, str]:
    """A member with a Playground project of their own (its PI), an API key and a finished job, made through
    the REST API; returns their e-mail, password and the project's id."""
    suffix = uuid.uuid4().hex[:6]
    email, short = f"bo-{suffix}@{DOMAIN}", f"shots-{suffix}"
    password = site.user(email)
    body = {"call_id": "playground", "title": "Screenshots of the portal", "project_name": short,
            "abstract": ABSTRACT, "domain": "user interfaces", "team": [], "requested_gpu_hours": {"local": 2},
            "organisation": {"name": ORGANISATION, "sector": "academia", "country": "DE"},
            "requested_tokens": 100_000, "duration_months": 1, "ai_act_risk": "minimal", "datasets": "None."}
    with httpx.Client(base_url=site.base, headers={"authorization": f"Bearer {site.token(email)}"}) as api:
        draft = api.post("/api/v1/applications", json=body)
        assert draft.status_code == 201, draft.text
        granted = api.post(f"/api/v1/applications/{draft.json()['id']}/submit")
        assert granted.status_code == 200 and granted.json()["state"] == "allocated", granted.text
        project_id = granted.json()["project_id"]
        made = api.post(f"/api/v1/projects/{project_id}/keys", json={"name": "a rather long name for a laptop key"})
        assert made.status_code == 201, made.text
        job = api.post("/api/v1/jobs", json={"project": short, "partition": "local", "gpus": 1, "time": 1,
                                             "script": "echo shots"})
        assert job.status_code == 201, job.text
    return email, password, project_id


def _overflow(page) -> int:
    """How far the page is wider than the window, in CSS pixels (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _shots(browser, site, viewport: dict, paths: dict[str, str], tmp_path: Path, *, who=None) -> dict[str, int]:
    """Open each page at ``viewport`` (signed in as ``who``: (email, password)), screenshot it, and return
    the pages wider than the window with by how much."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    wide = {}
    try:
        page = context.new_page()
        if who:
            sign_in(page, site, *who)
        for name, path in paths.items():
            page.goto(site.base + path)
            page.screenshot(path=str(tmp_path / f"{viewport['width']}-{name}.png"), full_page=True)
            if _overflow(page) > 0:
                wide[name] = _overflow(page)
    finally:
        context.close()
    return wide


def _phone_checks(browser, site, who, project_id: str) -> None:
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, site, *who)
        page.goto(f"{site.base}/projects/{project_id}/keys")
        revoke = page.get_by_role("button", name=re.compile("^Revoke key")).first
        box = revoke.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box  # not cut off (issue 14)
        page.goto(f"{site.base}/usage")
        labels = page.locator("svg.chart text").evaluate_all(
            "ts => ts.filter(t => getComputedStyle(t).display !== 'none')"
            " .map(t => { const r = t.getBoundingClientRect();"
            " return {x: r.left, right: r.right, h: r.height, anchor: t.getAttribute('text-anchor')}; })")
        assert labels and min(label["h"] for label in labels) >= 9, labels  # legible: 5 px before (issue 14)
        days = sorted((label for label in labels if label["anchor"] == "middle"), key=lambda label: label["x"])
        assert all(a["right"] <= b["x"] for a, b in zip(days, days[1:], strict=False)), days  # apart
    finally:
        context.close()


def _operator_checks(browser, site, tmp_path: Path) -> None:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, site, *site.operator)
        tops = page.locator("header.site nav[aria-label=Main] > ul > li").evaluate_all(
            "lis => lis.map(li => Math.round(li.getBoundingClientRect().top))")
        assert len(set(tops)) == 1, f"the operator's navigation wraps at 1280 px: {tops}"  # issue 14
        page.get_by_role("link", name="Console").click()
        page.get_by_role("link", name="Outbox").click()  # in the console's own navigation
        current = page.locator('nav.subnav[aria-label="Operator console"] a[aria-current="page"]')
        assert current.inner_text() == "Outbox" and page.locator("form.filters").is_visible()
        page.screenshot(path=str(tmp_path / "1280-operator-outbox.png"), full_page=True)
        assert _overflow(page) <= 0
    finally:
        context.close()


def test_the_main_pages_fit_a_desktop_and_a_phone(site, member_organisation, chromium, tmp_path):
    email, password, project_id = _granted_member(site)
    signed_in = {"home": "/", "project": f"/projects/{project_id}", "jobs": "/jobs",
                 "keys": f"/projects/{project_id}/keys", "usage": "/usage", "applications": "/applications",
                 "notifications": "/notifications", "account": "/account", "new-job": "/jobs/new"}
    public = {"public-home": "/", "public-calls": "/apply", "public-catalogue": "/catalogue",
              "public-training": "/training", "sign-up": "/signup"}
    wide = {}
    for viewport in (DESKTOP, PHONE):
        wide |= {f"{viewport['width']} {k}": v for k, v in
                 _shots(chromium, site, viewport, signed_in, tmp_path, who=(email, password)).items()}
        wide |= {f"{viewport['width']} {k}": v for k, v in _shots(chromium, site, viewport, public, tmp_path).items()}
    assert not wide, f"pages wider than the window (px): {wide}; screenshots in {tmp_path}"
    _phone_checks(chromium, site, (email, password), project_id)
    _operator_checks(chromium, site, tmp_path)
