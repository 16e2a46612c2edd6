"""The hot /v1 operations through create_app, in process (httpx's ASGI transport, the app's own lifespan):
the same endpoints `jaif serve` runs, in front of the stand-in upstream, with a key made by the CLI.
Answers, streams, and the refusals the pipeline around them gives: no key, wrong method, a body over the
limit (declared, and growing past it as it arrives), all in the OpenAI shape with the security headers."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from jaif.app import create_app
from jaif.config import InferenceSettings, Settings
from jaif.inference.endpoints import Hangup, Sweeper
from jaif.web import headers
from tests.support.metered import avoid_window_edge
from tests.support.procs import base_env, last_line, upstream
from tests.support.services import Cli

MAX_BODY = 64 * 1024
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}


@pytest.fixture
async def served(tmp_path):
    """The app and a client of it with the project's key."""
    url = f"sqlite:///{tmp_path}/jaif.db"
    env = base_env(JAIF_DATABASE_URL=url, JAIF_DATA_DIR=str(tmp_path / "var"), JAIF_INFERENCE__BUILTIN_MODELS="false")
    jaif = Cli(env)  # in-process: the key is made by the CLI's own code, without a process per command
    jaif("db", "upgrade")
    jaif("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    jaif("project", "create", "alpha", "--org", "Uni A", "--token-quota", "100000")
    key = last_line(jaif("key", "create", "--project", "alpha"))
    with upstream(env) as (upstream_url, _proc):
        jaif("model", "add", "fake-chat", "--upstream", upstream_url)
        jaif("model", "add", "fake-embed", "--upstream", upstream_url, "--kind", "embedding")
        settings = Settings(database_url=url, data_dir=tmp_path / "var",
                            inference=InferenceSettings(builtin_models=False, max_body_bytes=MAX_BODY))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jaif.test", timeout=30,
                                         headers={"authorization": f"Bearer {key}"}) as http:
                yield app, http


@pytest.fixture
def client(served):
    return served[1]


def assert_secure(response: httpx.Response, *, cache: str = "no-store") -> None:
    """Every header SecurityHeaders gives the rest of /v1 (web/headers.py): the hot endpoints answer ahead
    of it and set them themselves. An answer opened in a browser may load nothing and be framed by no one."""
    for name, value in headers.API_HEADERS:
        assert response.headers[name.decode()] == value.decode(), name
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["cache-control"] == cache


def error_of(response: httpx.Response, status: int, code: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error


async def test_the_hot_operations_answer_through_create_app(client):
    chat = await client.post("/v1/chat/completions", json=CHAT)
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
    assert_secure(chat)  # web/headers.py, as everywhere

    async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as streamed:
        assert streamed.status_code == 200 and streamed.headers["content-type"] == "text/event-stream"
        assert_secure(streamed, cache="no-cache")
        events = [line async for line in streamed.aiter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert [json.loads(e[6:])["object"] for e in events[:-1]] == ["chat.completion.chunk"] * 3

    text = await client.post("/v1/completions", json={"model": "fake-chat", "prompt": "hi", "max_tokens": 2})
    assert text.status_code == 200 and text.json()["object"] == "text_completion", text.text
    vectors = await client.post("/v1/embeddings", json={"model": "fake-embed", "input": ["a", "b"]})
    assert vectors.status_code == 200 and len(vectors.json()["data"]) == 2, vectors.text


async def test_refusals_are_rendered_once_in_the_openai_shape(client):
    unauthenticated = await client.post("/v1/chat/completions", json=CHAT, headers={"authorization": ""})
    error_of(unauthenticated, 401, "missing_api_key")
    assert_secure(unauthenticated)
    error_of(await client.post("/v1/embeddings", content=b'{"model": ', headers={"content-type": "application/json"}),
             400, "invalid_json")
    wrong = await client.get("/v1/chat/completions")
    assert error_of(wrong, 405, None)["message"] == "Method GET is not allowed for /v1/chat/completions"
    assert wrong.headers["allow"] == "POST"
    assert_secure(wrong)

    big = {**CHAT, "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    declared = await client.post("/v1/chat/completions", json=big)  # Content-Length over the limit
    assert "larger than the limit" in error_of(declared, 413, "payload_too_large")["message"]
    assert_secure(declared)

    async def chunks():  # no Content-Length: the body grows past the limit as it arrives
        for _ in range(4):
            yield b" " * (MAX_BODY // 2)

    growing = await client.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    error_of(growing, 413, "payload_too_large")
    assert_secure(growing)
    # A declared length over the limit is refused before any of the body is read, whatever follows.
    claimed = await client.post("/v1/chat/completions", content=b"{}",
                                headers={"content-type": "application/json", "content-length": str(MAX_BODY + 1)})
    error_of(claimed, 413, "payload_too_large")
    assert_secure(claimed)
    # A NUL in the query string is refused as on every other route (web/limits.py).
    nul = await client.post("/v1/chat/completions?user=a%00b", json=CHAT)
    assert error_of(nul, 400, None)["param"] == "user"
    assert_secure(nul)
    exact = await client.post("/v1/chat/completions", content=b" " * MAX_BODY,
                              headers={"content-type": "application/json"})
    error_of(exact, 400, "invalid_json")  # a body of the limit exactly is read (and is not JSON)


async def test_a_bug_in_the_pipeline_is_the_last_resorts_500_with_its_request_id(served, monkeypatch, caplog):
    # The hot endpoints answer outside FastAPI's error middleware (web/edge.py): a bug there still gets the
    # app's one last-resort answer, logged once with its traceback, never a dropped connection.
    app, client = served

    async def broken(authorization):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.gateway, "authenticate", broken)
    answer = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "my-call-1"})
    error = error_of(answer, 500, None)
    assert "request my-call-1" in error["message"] and "a bug" not in error["message"]
    assert answer.headers["x-request-id"] == "my-call-1"
    assert_secure(answer)
    [logged] = [r for r in caplog.records if r.name == "jaif.errors"]
    assert "my-call-1" in logged.getMessage() and logged.exc_info[1].args == ("a bug",)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/tokenize"])
async def test_a_bugs_500_names_the_request_id_it_carries(served, monkeypatch, path):
    """Without a client's id, the last resort's 500 names the gateway's id, and its x-request-id is that id
    (on vLLM's /tokenize too, an API path as /v1's are), not another one added on the way out."""
    app, client = served

    async def broken(authorization):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.gateway, "authenticate", broken)
    answer = await client.post(path, json={"model": "m", "prompt": "hello"})
    error = error_of(answer, 500, None)
    assert f"(request {answer.headers['x-request-id']})" in error["message"]
    assert_secure(answer)


async def test_tokenize_counts_against_the_keys_requests_per_minute(served, tmp_path):
    """Not charged, but not free of the key's rate limit either: a key with --rpm 2 gets two tokenisations
    a minute, and the third is the 429 a chat completion would get."""
    _app, client = served
    env = base_env(JAIF_DATABASE_URL=f"sqlite:///{tmp_path}/jaif.db", JAIF_DATA_DIR=str(tmp_path / "var"))
    limited = last_line(Cli(env)("key", "create", "--project", "alpha", "--rpm", "2"))
    body = {"model": "fake-chat", "prompt": "hello there"}
    headers = {"authorization": f"Bearer {limited}"}
    # Two calls never straddle a minute's edge here: the window is the clock's minute (metering/ratelimit.py).
    avoid_window_edge()
    answers = [await client.post(path, json=body, headers=headers) for path in ("/tokenize", "/v1/tokenize")]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    refused = await client.post("/tokenize", json=body, headers=headers)
    assert error_of(refused, 429, "rate_limit_exceeded")["type"] == "rate_limit_error"
    assert "2 requests" in refused.json()["error"]["message"]


async def test_the_endpoints_answer_with_the_gateway_of_the_lifespan_under_way(tmp_path):
    """The app's lifespan hands its runtime's gateway to the hot endpoints (HotRoutes.serve), and takes it
    back when it ends: a second lifespan of the same app gets its own, never the stopped one's."""
    url = f"sqlite:///{tmp_path}/jaif.db"
    Cli(base_env(JAIF_DATABASE_URL=url, JAIF_DATA_DIR=str(tmp_path / "var")))("db", "upgrade")
    app = create_app(Settings(database_url=url, data_dir=tmp_path / "var",
                              inference=InferenceSettings(builtin_models=False)))
    endpoints = list(app.front.values())
    assert endpoints and all(endpoint.gateway is None for endpoint in endpoints)
    async with app.router.lifespan_context(app):
        first = app.state.gateway
        assert all(endpoint.gateway is first for endpoint in endpoints)
        # and the loop serving them and its thread, which a request's Hangup asks for its task
        assert all(endpoint.sweeper.loop is asyncio.get_running_loop() for endpoint in endpoints)
        assert all(endpoint.sweeper.thread == threading.get_ident() for endpoint in endpoints)
    assert all(endpoint.gateway is None and endpoint.sweeper.loop is None for endpoint in endpoints)
    async with app.router.lifespan_context(app):
        assert app.state.gateway is not first
        assert all(endpoint.gateway is app.state.gateway for endpoint in endpoints)
    assert all(endpoint.gateway is None for endpoint in endpoints)


@pytest.mark.parametrize("known", [True, False], ids=["serving loop known", "running loop"])
async def test_a_hangup_cancels_the_task_that_armed_it_with_or_without_the_serving_loop(known):
    """Hangup.arm takes the task that armed it from the loop its Sweeper was told of (HotRoutes.serve) and
    from the running loop otherwise: the watch then cancels that task when the client leaves."""
    left = asyncio.Event()

    async def receive() -> dict:
        await left.wait()
        return {"type": "http.disconnect"}

    sweeper = Sweeper()
    if known:
        sweeper.loop, sweeper.thread = asyncio.get_running_loop(), threading.get_ident()
    client = Hangup(receive, sweeper)

    async def request() -> str:
        client.arm()
        try:
            await asyncio.sleep(5)  # an upstream that takes its time
        except asyncio.CancelledError:
            return "left" if client.left() else "cancelled otherwise"
        return "answered"

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    assert client._task is task
    left.set()
    assert await asyncio.wait_for(task, 1) == "left"
