"""The hot /v1 routes as plain ASGI endpoints: POST /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/rerank (and POST /v1/responses, /tokenize and /detokenize, whose endpoints in responses/endpoint.py and
token_endpoints.py override ``InferenceEndpoint.answer``).

``mount(app)`` (called once, by create_app) mounts them in a router of their own, ``HotRoutes``, as the
app's front (web/edge.py), which the app asks before anything else: ahead of FastAPI's and Starlette's
``__call__``, the security headers and body limit middleware, FastAPI's own error, telemetry and
body-size layers, the portal's sessions and CSRF check, and FastAPI's exception handlers and routing,
which together cost a request more CPU than the endpoint itself (docs/gateway.md, the request path).
The endpoints apply those two middlewares' rules themselves: their answers carry the security headers
as constant bytes (web/headers.py ``ANSWER_HEADERS``, the /v1 set), their refusals get them as every answer does
(``adding_headers``), and they refuse a query string with a NUL character and bound the body as they
read it with the body limit's rules (web/limits.py). `jaif serve` runs the app create_app builds, so
tests and servers answer these paths with the same objects, and no other handler exists for them. The
OpenAPI document describes them from inference/openapi.py.

Each endpoint reads the body (at most ``inference.max_body_bytes``: 413 for a larger one, declared or sent),
authenticates, parses, calls the gateway once and writes the answer with constant headers and the
request's ``x-request-id`` (web/request_ids.py): the gateway's id, or the client's own where it sent a
sane one; errors carry it too. A JaifError
is rendered by web/errors.py, as everywhere; anything else before the answer starts gets the same
last-resort 500 as the rest of the app (``unexpected_response``).

A client that hangs up is seen through ASGI's ``http.disconnect`` (``receive``), never through a failed
``send``: uvicorn drops what is sent after a disconnect without raising. ``Hangup`` watches for it
while the gateway waits on an upstream and while a stream is relayed, and cancels the request's task
(docs/gateway.md, Failure behaviour). A body cut off by a disconnect is not served.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol

import orjson
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from jaif.access.schemas import KeyPrincipal
from jaif.errors import JaifError
from jaif.inference.backends.base import Body
from jaif.inference.gateway import Gateway
from jaif.inference.openapi import HOT_OPERATIONS
from jaif.web.edge import EdgeApp
from jaif.web.errors import error_response, method_not_allowed, unexpected_response
from jaif.web.headers import ANSWER_HEADERS, API_HEADERS, adding_headers
from jaif.web.limits import declared_over, nul_in, too_large
from jaif.web.request_ids import HEADER as REQUEST_ID
from jaif.web.request_ids import SCOPE_KEY, client_request_id

# Constant bytes, no per-request work: the content type and the security headers (web/headers.py); a
# stream says no-cache (as SSE does) where other answers say no-store.
_JSON = ((b"content-type", b"application/json"), *ANSWER_HEADERS)
_SSE = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
        *API_HEADERS)


# A request answered sooner than this never starts watching for its client (most answers of a fast
# model do not need it): watching is a task waiting in receive, 5-12 µs of the gateway's CPU per request
# in process on the loaded test machine, against ~1 µs for arming and disarming through the Sweeper.
WATCH_AFTER_S = 0.05


class Hangup:
    """The gateway's ClientWatch over ASGI: while armed, an ``http.disconnect`` cancels the request's task.

    Watching is a task waiting in ``receive`` (which returns when the client leaves or the response is
    complete). ``Sweeper`` starts it for a request armed for WATCH_AFTER_S (at most twice that), and it
    then runs until one of the two; a client that left before it started is seen at once (the server
    remembers the disconnect). The request's task is cancelled only while armed, so the CancelledError
    surfaces at the await under way there (an upstream call, a stream's next event), never in the
    metering around it.

    Its state starts as the class's defaults (no per-request stores but the two it is made with): the
    hot endpoints make one per request."""

    _task: asyncio.Task | None = None  # the request's, from the first arm()
    _watcher: asyncio.Task | None = None
    armed = False
    gone = False  # the client left (or the response is complete)
    cancelled = False  # the request's task was cancelled for it

    def __init__(self, receive: Receive, sweeper: Sweeper) -> None:
        self._receive = receive
        self._sweeper = sweeper

    def arm(self) -> None:
        if self.gone:
            raise asyncio.CancelledError("the client went away")
        self.armed = True
        if self._watcher is None:
            task = self._task
            if task is None:
                # The loop the app is served by, where known (Sweeper.loop) and this thread's: asked for the
                # running loop, current_task makes a getpid() system call each time in Python 3.11.
                sweeper = self._sweeper
                loop = sweeper.loop if sweeper.thread == threading.get_ident() else None
                task = asyncio.current_task(loop) if loop is not None else None
                if task is None:
                    task = asyncio.current_task()
                    assert task is not None
                self._task = task
            self._sweeper.add(self, task.get_loop())

    def disarm(self) -> None:
        self.armed = False
        if self._watcher is None:
            self._sweeper.discard(self)

    def left(self) -> bool:
        """After a CancelledError: True if it came of the client leaving (the task's cancellation is
        then withdrawn: the request ends normally, with nothing more to send); False: re-raise it."""
        if not self.gone:
            return False
        if self.cancelled:
            assert self._task is not None
            self._task.uncancel()
        return True

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watcher is None:
            self._watcher = loop.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # nothing else comes once the body is read
        self.gone = True
        if self.armed and self._task is not None:
            self.cancelled = True
            self._task.cancel("the client went away")


class Sweeper:
    """Starts the watch of the requests armed for WATCH_AFTER_S, with one timer for all of them, which
    runs only while some are armed: a request costs a set insertion and removal, and no loop callback.
    Those armed at one sweep and still armed at the next are started."""

    def __init__(self) -> None:
        self._young: set[Hangup] = set()
        self._old: set[Hangup] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop that serves the requests, where known (HotRoutes.serve, from the app's lifespan), and its
        # thread: a Hangup in that thread asks it for its task (another loop's task would be another's).
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: int | None = None

    def add(self, hangup: Hangup, loop: asyncio.AbstractEventLoop) -> None:
        """``loop``: the request's task's (asked of the task: in Python 3.11, asking for the running loop is
        a getpid() system call each time)."""
        if self._loop is not loop:  # the first request, or the app served by a new loop: the old one's are gone
            self._loop, self._young, self._old, self._timer = loop, set(), set(), None
        self._young.add(hangup)
        if self._timer is None:
            self._timer = loop.call_later(WATCH_AFTER_S, self._sweep)

    def discard(self, hangup: Hangup) -> None:
        self._young.discard(hangup)
        self._old.discard(hangup)

    def _sweep(self) -> None:
        due, self._old, self._young = self._old, self._young, set()
        assert self._loop is not None
        for hangup in due:
            hangup.start(self._loop)
        self._timer = self._loop.call_later(WATCH_AFTER_S, self._sweep) if self._old else None


class EventStream(Protocol):
    """What a streamed answer gives the endpoint: a StreamRelay, or the Responses API's ResponseStream."""

    @property
    def events(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class InferenceEndpoint:
    """One hot operation, as an ASGI app (Starlette's Route runs it as it is: no Request object)."""

    # The gateway of the app's running runtime, set by HotRoutes.serve from the app's lifespan; else (an app
    # whose lifespan did not run) the app's state is asked, as every other route does.
    gateway: Gateway | None = None

    def __init__(self, request_model: type[BaseModel]) -> None:
        self.request_model = request_model
        self.sweeper = Sweeper()
        self.max_body_bytes = 0  # set by HotRoutes: inference.max_body_bytes

    def answer(
        self, scope: Scope, gateway: Gateway, who: KeyPrincipal, body: bytes, client: Hangup, request_id: str,
        client_request_id: str | None,
    ) -> Awaitable[Body | EventStream]:
        """The answer to one authenticated request: a JSON body, or events to stream. ``request_id``: the
        gateway's (the usage record's); ``client_request_id``: the client's own, where it sent a sane one.
        Overridden by ``async def``s; this one parses at once and hands back the gateway's coroutine, which
        spares a coroutine of its own on every request."""
        request = gateway.parse(self.request_model, body)
        return gateway.handle(who, request, body, client=client, request_id=request_id,
                              client_request_id=client_request_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await method_not_allowed(scope, ["POST"])(scope, receive, adding_headers(scope, send))
            return
        gateway = self.gateway
        if gateway is None:  # Starlette's State answers through __getattr__: a formatted AttributeError first
            gateway = scope["app"].state.gateway
        authorization = given = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == REQUEST_ID:
                given = client_request_id(value)
            elif name == b"content-length":
                length = value
        # The gateway's id is the usage record's; the answer carries the client's own, where it sent a sane one.
        request_id = gateway.new_request_id()
        scope[SCOPE_KEY] = shown = given or request_id.encode()
        client = Hangup(receive, self.sweeper)
        limit = self.max_body_bytes
        try:
            if b"%00" in scope["query_string"]:  # as BodyLimit refuses it for every other route
                raise nul_in(scope["query_string"])
            if length is not None and declared_over(length, limit):
                raise too_large(limit)
            message = await receive()  # the body, mostly whole in one message
            body = message.get("body", b"") if message["type"] == "http.request" else None
            if body is not None and (len(body) > limit or message.get("more_body", False)):
                body = await _rest(receive, body, limit)
            if body is None:
                return  # the client left before its body was whole: nothing to serve, nothing admitted
            who = await gateway.authenticate(authorization)
            result = await self.answer(scope, gateway, who, body, client, request_id,
                                       given.decode() if given else None)
        except JaifError as exc:
            response = error_response(scope["path"], exc)
            response.raw_headers.append((REQUEST_ID, shown))
            await response(scope, receive, adding_headers(scope, send))
            return
        except asyncio.CancelledError:
            if client.left():
                return  # the client left; the gateway recorded the request as cancelled
            raise
        except Exception as exc:  # a bug: the last resort's 500 (this endpoint answers outside FastAPI's)
            await unexpected_response(scope, exc)(scope, receive, adding_headers(scope, send))
            return
        if not isinstance(result, dict):
            try:
                await _send_stream(send, result, client, shown)
            except asyncio.CancelledError:
                if client.left():
                    return  # the client left mid-stream; the relay recorded it as cancelled
                raise
            return
        payload = orjson.dumps(result)
        await send(
            {"type": "http.response.start", "status": 200,
             "headers": [*_JSON, (b"content-length", b"%d" % len(payload)), (REQUEST_ID, shown)]}
        )  # fmt: skip
        await send({"type": "http.response.body", "body": payload})


class HotRoutes(dict[str, InferenceEndpoint]):
    """The hot operations by path, as the app's ``front`` (web/edge.py): a request for the path of one of
    ``routes`` is answered by its endpoint (which refuses another method than POST with a 405); every
    other request goes on through the app. ``max_body_bytes``: the largest request body the endpoints
    read (``inference.max_body_bytes``).

    Paths are looked up whole, in this dict: the paths are fixed, and Starlette's pattern matching
    (``Route.matches``) cost 4 µs a request here."""

    def __init__(self, routes: list[Route], *, max_body_bytes: int) -> None:
        super().__init__()
        self.routes = routes
        for route in routes:
            assert isinstance(route.endpoint, InferenceEndpoint) and route.methods == {"POST"}
            route.endpoint.max_body_bytes = max_body_bytes
            self[route.path] = route.endpoint

    def serve(self, gateway: Gateway | None) -> None:
        """The endpoints answer with ``gateway`` (the app's lifespan, in the loop that serves the app: its
        runtime's, then None once stopped)."""
        loop, thread = (asyncio.get_running_loop(), threading.get_ident()) if gateway is not None else (None, None)
        for endpoint in self.values():
            endpoint.gateway = gateway
            endpoint.sweeper.loop, endpoint.sweeper.thread = loop, thread


def routes() -> list[Route]:
    """One route per operation of inference/openapi.py's HOT_OPERATIONS (which documents them)."""
    return [
        Route(path, InferenceEndpoint(body), methods=["POST"], name=name, include_in_schema=False)
        for path, name, _summary, body, _answer, _event in HOT_OPERATIONS
    ]


def mount(app: EdgeApp, *, max_body_bytes: int, extra: list[Route] | None = None) -> None:
    """Mount the hot operations as ``app``'s front (web/edge.py), ahead of the security headers and body
    limit, FastAPI's own layers and the portal's middleware (sessions, CSRF); create_app calls this once.
    ``extra``: more hot routes (POST /v1/responses, responses/endpoint.py)."""
    if app.front:
        raise RuntimeError("the hot routes are mounted once")
    app.front = HotRoutes([*routes(), *(extra or [])], max_body_bytes=max_body_bytes)


async def _rest(receive: Receive, body: bytes, limit: int) -> bytes | None:
    """The request body, whole, from its first part (``body``); None if the client left before it was (a
    part is never served as the whole). PayloadTooLarge once it grows past ``limit`` bytes."""
    seen = len(body)
    if seen > limit:
        raise too_large(limit)
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_stream(send: Send, result: EventStream, client: Hangup, request_id: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [*_SSE, (REQUEST_ID, request_id)]})
    try:
        client.arm()  # a client that leaves now cancels the relay: the upstream stream is closed at once
        async for event in result.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        client.disarm()
        await send({"type": "http.response.body", "body": b""})
    finally:
        client.disarm()
        # Runs the gateway's settlement now (a client that went away mid-stream: cancelled).
        await result.aclose()
