"""CsrfMiddleware on a tiny Starlette app behind the real SessionMiddleware: which requests it checks,
and that the body reaches the app intact after the check read it."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from jaif.web.csrf import TOKEN_READ_LIMIT, CsrfMiddleware, csrf_token


async def token(request: Request) -> PlainTextResponse:
    return PlainTextResponse(csrf_token(request))


async def sign_in(request: Request) -> PlainTextResponse:
    request.session["user_id"] = "u1"
    return PlainTextResponse(csrf_token(request))


async def echo(request: Request) -> JSONResponse:
    form = await request.form() if "form" in request.headers.get("content-type", "") else None
    if form is not None:
        body = {k: v if isinstance(v, str) else (await v.read()).decode() for k, v in form.items()}
    else:
        body = (await request.body()).decode()
    return JSONResponse({"body": body})


def make_app() -> Starlette:
    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/token", token),
            Route("/sign-in", sign_in),
            Route("/form", echo, methods=methods),
            Route("/api/v1/thing", echo, methods=methods),
            Route("/v1/chat/completions", echo, methods=methods),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key="test"), Middleware(CsrfMiddleware)],
    )


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        yield c


async def test_form_posts_need_the_token_and_arrive_intact(client):
    t = (await client.get("/token")).text
    assert (await client.post("/form", data={"a": "1"})).status_code == 403
    assert (await client.post("/form", data={"a": "1", "csrf_token": "nope"})).status_code == 403
    ok = await client.post("/form", data={"a": "1", "csrf_token": t})
    assert ok.status_code == 200 and ok.json()["body"] == {"a": "1", "csrf_token": t}
    big = "é" * 100_000
    ok = await client.post("/form", files={"f": ("x.txt", big.encode())}, data={"csrf_token": t})
    assert ok.status_code == 200 and ok.json()["body"]["f"] == big


async def test_other_unsafe_requests_without_json_need_the_header(client):
    t = (await client.get("/token")).text
    assert (await client.put("/form", content=b"raw", headers={"content-type": "text/plain"})).status_code == 403
    assert (await client.delete("/form")).status_code == 403
    assert (await client.delete("/form", headers={"x-csrf-token": t})).status_code == 200
    assert (await client.post("/form", content=b"{}", headers={"content-type": "text/plain"})).status_code == 403


async def test_exempt_requests(client):
    assert (await client.get("/form")).status_code == 200
    assert (await client.post("/form", data={"a": "1"}, headers={"authorization": "Bearer x"})).status_code == 200
    assert (await client.post("/form", json={"a": 1}, headers={"authorization": "bearer x"})).status_code == 200
    assert (await client.post("/v1/chat/completions", data={"a": "1"})).status_code == 200
    # Under /api a browser that is not signed in has nothing to forge with; a signed-in one does.
    assert (await client.delete("/api/v1/thing")).status_code == 200
    t = (await client.get("/sign-in")).text
    assert (await client.delete("/api/v1/thing")).status_code == 403
    assert (await client.delete("/api/v1/thing", headers={"x-csrf-token": t})).status_code == 200


async def test_json_bodies_need_the_token_too(client):
    """A JSON body is no exemption: a cookie-authenticated script call must send X-CSRF-Token (issue 9)."""
    t = (await client.get("/sign-in")).text
    assert (await client.post("/form", json={"a": 1})).status_code == 403
    assert (await client.post("/api/v1/thing", json={"a": 1})).status_code == 403
    assert (await client.put("/api/v1/thing", content=b"{}",
                             headers={"content-type": "application/merge-patch+json"})).status_code == 403
    ok = await client.post("/api/v1/thing", json={"a": 1}, headers={"x-csrf-token": t})
    assert ok.status_code == 200 and json.loads(ok.json()["body"]) == {"a": 1}


async def test_only_a_bearer_authorization_is_exempt(client):
    """Another scheme (Basic, an empty Bearer) is not an API token: the session would be at stake."""
    await client.get("/sign-in")
    for value in ("Basic dTpw", "Bearer", "Bearer   ", "Token x"):
        refused = await client.post("/form", json={"a": 1}, headers={"authorization": value})
        assert refused.status_code == 403, value


async def test_a_malformed_multipart_body_is_refused_not_failed(client):
    await client.get("/token")
    response = await client.post(
        "/form", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 403


async def test_a_multipart_form_is_read_only_as_far_as_its_token():
    """An upload's file is not held by the check: the app is called once the token's part has arrived, and
    reads the rest itself; without a token the whole (bounded) body is read and refused."""
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append("app")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(f"app read {len(body)} bytes")
        await PlainTextResponse("ok")(scope, receive, send)

    head = (b'--xyz\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nsecret\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n')
    chunks = [head, b"x" * 1000, b"y" * 1000 + b"\r\n--xyz--\r\n"]

    def receiver(parts):
        pending = list(parts)

        async def receive():
            seen.append("read")
            data = pending.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(pending)}

        return receive

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/upload", "query_string": b"", "session": {"csrf": "secret"},
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz")]}
    await CsrfMiddleware(app)(scope, receiver(chunks), send)
    assert seen[:3] == ["read", "app", "read"]  # one message read before the app, the rest by the app
    assert seen[-1] == f"app read {sum(map(len, chunks))} bytes"  # intact
    assert sent[0]["status"] == 200

    seen.clear()
    sent.clear()
    forged = [head.replace(b"secret", b"forged"), *chunks[1:]]
    await CsrfMiddleware(app, refused=lambda request, error: PlainTextResponse("no", 403))(
        {**scope}, receiver(forged), send)
    assert "app" not in seen and sent[0]["status"] == 403
    no_token = [b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n', *chunks[1:]]
    seen.clear()
    sent.clear()
    await CsrfMiddleware(app, refused=lambda request, error: PlainTextResponse("no", 403))(
        {**scope}, receiver(no_token), send)
    assert seen == ["read", "read", "read"] and sent[0]["status"] == 403


async def test_a_large_body_is_never_held_for_a_check_that_must_fail():
    """Review of issue 14's uploads: /files/upload takes bodies of files.max_bytes, and the check read a form
    without its token whole before refusing it. Without a session token nothing is read; a form without its
    token is read at most TOKEN_READ_LIMIT bytes, multipart or url-encoded."""
    reads = []

    def endless(chunk: bytes, content_type: bytes):
        async def receive():
            reads.append(len(chunk))
            return {"type": "http.request", "body": chunk, "more_body": True}  # a body that never ends

        scope = {"type": "http", "method": "POST", "path": "/files/upload", "query_string": b"",
                 "session": {"csrf": "secret"}, "headers": [(b"content-type", content_type)]}
        return scope, receive

    sent = []

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("the app must not be reached")

    refuse = CsrfMiddleware(app, refused=lambda request, error: PlainTextResponse("no", error.status))
    chunk = b"x" * 65536
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
    for content_type, first in ((b"multipart/form-data; boundary=xyz", part),
                                (b"application/x-www-form-urlencoded", b"")):
        scope, receive = endless(first + chunk, content_type)
        reads.clear()
        sent.clear()
        await refuse(scope, receive, send)
        assert sent[0]["status"] in (403, 413) and sum(reads) <= TOKEN_READ_LIMIT + len(first) + len(chunk)
        reads.clear()
        sent.clear()
        await refuse({**scope, "session": {}}, receive, send)  # no session token: not a byte read
        assert reads == [] and sent[0]["status"] == 403
