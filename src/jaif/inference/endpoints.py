"""The hot /v1 routes as plain ASGI endpoints: POST /v1/chat/completions, /v1/completions, /v1/embeddings.

``mount(app)`` (called once, by create_app) mounts them in a router of their own, ``HotRoutes``, which
sits in the app's middleware just inside the security headers and the body limit and ahead of
everything else: the portal's sessions and CSRF check, and FastAPI's exception and routing layers,
which together cost a request about as much CPU as the endpoint itself (docs/gateway.md, the request
path). `jaif serve` runs the app create_app builds, so tests and servers answer these paths with the
same objects, and no other handler exists for them. The OpenAPI document describes them from
inference/openapi.py.

Each endpoint reads the body (BodyLimit bounds it: its ``receive`` raises PayloadTooLarge),
authenticates, parses, calls the gateway once and writes the answer with constant headers. A JaifError
is rendered by web/errors.py, as everywhere; anything else goes on to the app's last-resort handler.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from jaif.errors import JaifError
from jaif.inference.gateway import Gateway
from jaif.inference.openapi import HOT_OPERATIONS
from jaif.inference.streaming import StreamRelay
from jaif.web.errors import error_response, method_not_allowed

# Constant bytes, no per-request work. nosniff is set here already, so the security headers middleware
# (web/headers.py) keeps it and adds the rest.
_JSON = ((b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"))
_SSE = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
        (b"x-content-type-options", b"nosniff"))


class InferenceEndpoint:
    """One hot operation, as an ASGI app (Starlette's Route runs it as it is: no Request object)."""

    def __init__(self, request_model: type[BaseModel]) -> None:
        self.request_model = request_model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = scope["app"].state.gateway
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            body = await _body(receive)
            who = await gateway.authenticate(authorization)
            result = await gateway.handle(who, gateway.parse(self.request_model, body), body)
        except JaifError as exc:
            await error_response(scope["path"], exc)(scope, receive, send)
            return
        if isinstance(result, StreamRelay):
            await _send_stream(send, result)
            return
        payload = orjson.dumps(result)
        await send(
            {"type": "http.response.start", "status": 200,
             "headers": [*_JSON, (b"content-length", str(len(payload)).encode())]}
        )  # fmt: skip
        await send({"type": "http.response.body", "body": payload})


class HotRoutes:
    """A router for the hot operations, as pure ASGI middleware: a request for the path of one of ``routes``
    is answered by its endpoint (with another method: 405); every other request goes on to ``app``.

    Paths are looked up whole, in a dict: the three paths are fixed, and Starlette's pattern matching
    (``Route.matches``) cost 4 µs a request here."""

    def __init__(self, app: ASGIApp, *, routes: list[Route]) -> None:
        self.app = app
        self.routes = routes
        self._by_path = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._by_path.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
        elif route.methods is None or scope["method"] in route.methods:
            await route.endpoint(scope, receive, send)
        else:
            await method_not_allowed(scope, sorted(route.methods))(scope, receive, send)


def routes() -> list[Route]:
    """One route per operation of inference/openapi.py's HOT_OPERATIONS (which documents them)."""
    return [
        Route(path, InferenceEndpoint(body), methods=["POST"], name=name, include_in_schema=False)
        for path, name, _summary, body, _answer, _event in HOT_OPERATIONS
    ]


def mount(app: FastAPI) -> None:
    """Mount the hot operations on ``app``, as its outermost middleware so far. create_app calls this once,
    after the portal's middleware (sessions, CSRF) and before the body limit and security headers."""
    app.add_middleware(HotRoutes, routes=routes())


async def _body(receive: Receive) -> bytes:
    """The request body, whole. Its size is bounded by BodyLimit, whose ``receive`` raises PayloadTooLarge."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _send_stream(send: Send, result: StreamRelay) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    try:
        async for event in result.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        # Runs the gateway's settlement now, also when the client went away mid-stream.
        await result.aclose()
