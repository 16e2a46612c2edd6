"""The hot path: POST /v1/chat/completions, /v1/completions and /v1/embeddings as plain ASGI.

FastAPI's per-request machinery (request objects, dependency solving, exit stacks) cost about 40% of
the gateway's CPU per proxied request (bench/RESULTS.md). This middleware answers those three
routes itself with the same gateway service and the same error rendering; the FastAPI routes in
router.py declare them in the OpenAPI document and serve them if this middleware is not installed.
"""

from __future__ import annotations

import logging
import math
import uuid

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from jaif.errors import JaifError, PayloadTooLarge
from jaif.inference.gateway import Gateway
from jaif.inference.protocol import HOT_ROUTES
from jaif.inference.streaming import StreamRelay

log = logging.getLogger(__name__)

# nosniff (web/headers.py adds it, with the rest, to every other answer): constant bytes, no per-request work.
_JSON = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
        (b"x-content-type-options", b"nosniff")]


class InferenceFastPath:
    """Wraps the FastAPI app from outside (server.py), so hot requests skip its middleware stack too."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in HOT_ROUTES:
            await self.app(scope, receive, send)
            return
        gateway: Gateway = self.app.state.gateway
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            body = await self._body(scope, receive)
            who = await gateway.authenticate(authorization)
            result = await gateway.handle(who, gateway.parse(HOT_ROUTES[scope["path"]], body), body)
        except JaifError as exc:
            await _send_error(send, exc)
            return
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("unhandled error, request %s POST %s", request_id, scope["path"])
            await _send_error(
                send, JaifError(f"The server had an error processing your request (request {request_id}).")
            )
            return
        if isinstance(result, StreamRelay):
            await _send_stream(send, result)
            return
        payload = orjson.dumps(result)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise PayloadTooLarge(f"The request body is larger than the limit of {self.max_body_bytes} bytes.")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"The request body is larger than the limit of {self.max_body_bytes} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
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


async def _send_error(send: Send, error: JaifError) -> None:
    payload = orjson.dumps(error.to_openai())
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(error.retry_after))).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
