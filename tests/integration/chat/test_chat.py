"""The chat in the portal end to end in process: a member starts a conversation, sends messages whose
answers stream through the gateway and are charged to the project (a usage record under the member's chat
key, as for an API call); refusals (quota, rate limit) come back as messages; conversations are the user's
own; answers are rendered with their HTML escaped."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import select, update

from jaif.access.models import ApiKey
from jaif.access.service import CHAT_KEY_NAME
from jaif.chat.models import ChatMessage, Conversation
from tests.integration.chat.conftest import MODEL, SLOW_MODEL, send, start_chat


async def _record(chat, request_id: str):
    for _ in range(100):  # the usage writer flushes every 0.05 s
        record = chat.usage(request_id)
        if record is not None:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage record {request_id}")


async def test_an_answer_streams_and_is_charged_to_the_project_as_an_api_call(chat):
    project = chat.project()
    email = chat.member(project)
    browser = await chat.browser(email)
    home = await browser.get("/chat")
    assert home.status_code == 200 and f"{MODEL} (ready)" in home.text
    assert 'href="/chat" aria-current="page"' in home.text  # the navigation's Chat link
    conversation = await start_chat(browser, project, system_prompt="Be brief.", temperature="0.2", max_tokens="5")

    status, events = await send(browser, conversation, "Say **hello**")
    assert status == 200
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert deltas == ["tok0", " tok1", " tok2", " tok3", " tok4"]  # max_tokens 5 reached the model
    done = events[-1]
    assert done["type"] == "done" and done["status"] == "ok" and done["html"] == "<p>tok0 tok1 tok2 tok3 tok4</p>\n"
    assert done["usage"]["completion_tokens"] == 5 and done["usage"]["prompt_tokens"] > 0

    record = await _record(chat, done["request_id"])
    with chat.sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.project_id == project, ApiKey.name == CHAT_KEY_NAME))
        answer = session.scalar(select(ChatMessage).where(ChatMessage.id == done["message_id"]))
    assert (record.project_id, record.api_key_id, record.model, record.endpoint) == (project, key.id, MODEL,
                                                                                      "chat.completions")
    assert (record.stream, record.status, record.completion_tokens) == (True, "ok", 5)
    assert key.user_id == chat.user_id(email)
    assert (answer.prompt_tokens, answer.completion_tokens, answer.request_id) == (
        record.prompt_tokens, 5, record.id)

    page = (await browser.get(f"/chat/{conversation}")).text
    assert "Say <strong>hello</strong>" in page and "tok0 tok1 tok2 tok3 tok4" in page
    assert "5 completion tokens charged" in page and "Say **hello**</a>" in page  # the first message names it

    # The next turn carries the conversation so far (and the system prompt): a longer prompt is charged.
    _status, again = await send(browser, conversation, "And again")
    assert again[-1]["usage"]["prompt_tokens"] > done["usage"]["prompt_tokens"]


async def test_a_used_up_allowance_and_a_rate_limit_are_said_in_the_chat(chat):
    poor = chat.project(tokens=20)
    rich = chat.project()
    email = chat.member(poor, rich)
    browser = await chat.browser(email)
    conversation = await start_chat(browser, poor, max_tokens="100")
    status, events = await send(browser, conversation, "Hello")
    assert status == 200 and events[-1]["type"] == "error" and events[-1]["code"] == "insufficient_quota"
    assert events[-1]["headline"] == "Not sent: the project's token allowance is used up."
    with chat.sessions() as session:  # refused, so not kept: the page puts it back in the box
        assert session.scalar(select(ChatMessage).where(ChatMessage.conversation_id == conversation)) is None

    conversation = await start_chat(browser, rich)
    _status, first = await send(browser, conversation, "one")
    assert first[-1]["type"] == "done"
    with chat.sessions() as session, session.begin():
        session.execute(update(ApiKey).where(ApiKey.project_id == rich, ApiKey.name == CHAT_KEY_NAME)
                        .values(rpm_limit=1))
    # One request a minute: the next is refused (or, past a minute's end, the one after it).
    _status, second = await send(browser, conversation, "two")
    if second[-1]["type"] == "done":
        _status, second = await send(browser, conversation, "three")
    assert second[-1]["type"] == "error" and second[-1]["code"] == "rate_limit_exceeded"
    assert second[-1]["headline"] == "Not sent: too many requests in the last minute."
    assert second[-1]["retry_after_s"] > 0


async def test_a_revoked_chat_key_stops_the_chat_with_a_message(chat):
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project)
    assert (await send(browser, conversation, "one"))[1][-1]["type"] == "done"
    with chat.sessions() as session, session.begin():
        session.execute(update(ApiKey).where(ApiKey.project_id == project).values(revoked_at=ApiKey.created_at))
    status, refused = await send(browser, conversation, "two")
    assert status == 403 and "Chat in the portal" in refused[0]["text"]


async def test_conversations_are_their_users_own(chat):
    project = chat.project()
    alice, bob = chat.member(project), chat.member(project)
    as_alice, as_bob = await chat.browser(alice), await chat.browser(bob)
    mine = await start_chat(as_alice, project, title="Alice's secret plan")
    await send(as_alice, mine, "the plan is 42")

    assert "Alice's secret plan" not in (await as_bob.get("/chat")).text
    assert (await as_bob.get(f"/chat/{mine}")).status_code == 404
    theirs = await start_chat(as_bob, project)  # a page of bob's, for a CSRF token
    page = (await as_bob.get(f"/chat/{theirs}")).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    for path, data in ((f"/chat/{mine}/settings", {"title": "mine now", "model": MODEL}),
                       (f"/chat/{mine}/delete", {})):
        assert (await as_bob.client.post(path, data={**data, "csrf_token": token})).status_code == 404
    status, _ = await send(as_bob, theirs, "hi")
    assert status == 200
    sent = await as_bob.client.post(f"/chat/{mine}/messages", json={"content": "let me in"},
                                    headers={"x-csrf-token": token})
    assert sent.status_code == 404
    with chat.sessions() as session:
        kept = session.get(Conversation, mine)
        texts = list(session.scalars(select(ChatMessage.content).where(ChatMessage.conversation_id == mine)))
    assert kept.title == "Alice's secret plan" and "let me in" not in texts and "the plan is 42" in texts


async def test_a_message_without_the_csrf_token_is_refused(chat):
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project)
    status, _ = await send(browser, conversation, "forged", csrf=False)
    assert status == 403
    with chat.sessions() as session:
        assert session.scalar(select(ChatMessage).where(ChatMessage.conversation_id == conversation)) is None


async def test_html_in_an_answer_is_shown_as_text(chat):
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project)
    with chat.sessions() as session, session.begin():
        session.add(ChatMessage(conversation_id=conversation, role="assistant", model=MODEL, status="ok",
                                content='<script>alert("pwned")</script>\n\n<img src=x onerror="alert(1)">\n\n'
                                        "```html\n<b>bold?</b>\n```"))
    page = (await browser.get(f"/chat/{conversation}")).text
    log = page.split('id="chat-log"', 1)[1].split("</ol>", 1)[0]
    assert "<script" not in log and "<img" not in log and "<b>" not in log
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in log and "&lt;img src=x onerror=" in log
    assert '<pre><code class="language-html">&lt;b&gt;bold?&lt;/b&gt;' in log


async def test_settings_rename_and_delete(chat):
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project)
    page = f"/chat/{conversation}"
    bad = await browser.submit(f"/chat/{conversation}/settings",
                               {"title": "Renamed", "model": MODEL, "temperature": "hot", "system_prompt": "kept"},
                               page=page)
    assert bad.status_code == 400 and 'id="f-temperature-error"' in bad.text and 'value="hot"' in bad.text
    assert ">kept</textarea>" in bad.text
    other = await browser.submit(f"/chat/{conversation}/settings", {"title": "Renamed", "model": "gpt-nope"},
                                 page=page)
    assert other.status_code == 400 and 'id="f-model-error"' in other.text
    saved = await browser.submit(f"/chat/{conversation}/settings",
                                 {"title": "Renamed", "model": MODEL, "temperature": "1.5", "max_tokens": "7"},
                                 page=page)
    assert saved.status_code == 303
    shown = (await browser.get(page)).text
    assert "<h1>Renamed</h1>" in shown and 'value="1.5"' in shown and 'value="7"' in shown
    deleted = await browser.submit(f"/chat/{conversation}/delete", {}, page=f"/chat/{conversation}")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/chat"
    assert (await browser.get(f"/chat/{conversation}")).status_code == 404


async def test_the_plain_form_sends_and_comes_back_with_the_answer(chat):
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project)
    sent = await browser.submit(f"/chat/{conversation}/messages", {"content": "no script here"},
                                page=f"/chat/{conversation}")
    assert sent.status_code == 303
    page = (await browser.get(f"/chat/{conversation}")).text
    assert "no script here" in page and "tok0 tok1" in page and "completion tokens charged" in page


async def test_only_projects_with_a_token_allocation_and_their_allowed_models_are_offered(chat):
    none = chat.project(tokens=None)
    narrow = chat.project(allowed=["something-else"])
    browser = await chat.browser(chat.member(none, narrow))
    home = (await browser.get("/chat")).text
    with chat.sessions() as session:
        from jaif.access.models import Project
        names = {p.id: p.name for p in session.scalars(select(Project).where(Project.id.in_([none, narrow])))}
    assert names[narrow] in home and f'value="{none}"' not in home
    refused = await browser.submit("/chat", {"project": narrow, "model": MODEL})
    assert refused.status_code == 400 and 'id="f-model-error"' in refused.text
    refused = await browser.submit("/chat", {"project": none, "model": MODEL})
    assert refused.status_code == 404 and 'id="f-project-error"' in refused.text


async def test_a_page_that_leaves_mid_answer_stops_it_and_what_came_is_charged_and_kept(chat):
    """The page's side is watched as /v1 watches a client (inference/endpoints.py's Hangup): leaving cancels
    the answer once; the gateway settles it as cancelled (a usage record for what was used) and the answer
    is stored as far as it came."""
    project = chat.project()
    browser = await chat.browser(chat.member(project))
    conversation = await start_chat(browser, project, model=SLOW_MODEL)
    page = (await browser.get(f"/chat/{conversation}")).text
    token = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    cookie = "; ".join(f"{name}={value}" for name, value in browser.client.cookies.items())
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": f"/chat/{conversation}/messages",
        "raw_path": f"/chat/{conversation}/messages".encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"portal.test"), (b"content-type", b"application/json"), (b"cookie", cookie.encode()),
                    (b"x-csrf-token", token.encode())],
        "client": ("127.0.0.1", 50000), "server": ("portal.test", 80),
    }
    body = orjson.dumps({"content": "a long story, please"})
    streaming, sent = asyncio.Event(), []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await streaming.wait()
        await asyncio.sleep(0.3)  # a few tokens in, the page goes away
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            sent.append(message["body"])
            streaming.set()

    await asyncio.wait_for(chat.app(scope, receive, send), timeout=20)
    events = [orjson.loads(line) for chunk in sent for line in chunk.splitlines() if line.strip()]
    deltas = [e for e in events if e["type"] == "delta"]
    assert 0 < len(deltas) < 200 and events[-1]["type"] == "delta"  # cut short: no "done" went out
    with chat.sessions() as session:
        answer = session.scalar(select(ChatMessage).where(ChatMessage.conversation_id == conversation,
                                                          ChatMessage.role == "assistant"))
    assert answer.status == "cancelled" and answer.content.startswith("tok0 tok1")
    record = await _record(chat, answer.request_id)
    assert record.status == "cancelled" and record.status_code == 499 and record.project_id == project
    assert 0 < record.completion_tokens < 200 and answer.completion_tokens == record.completion_tokens
