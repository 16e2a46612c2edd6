"""Refuse what no route could use before it reaches one: bodies over the configured size, before they
are read into memory (413), and query strings with NUL characters (400: PostgreSQL cannot hold them in
text, so a filter with one would fail in the database instead of answering "bad request").

The one place the body size rule lives, for every route: a declared Content-Length over the limit is
refused before the body is read; a body that grows past it as it arrives makes ``receive`` raise
PayloadTooLarge in whatever reads it, and the app's error handler answers 413. The hot /v1 endpoints,
which answer ahead of this middleware (the app's front, inference/endpoints.py), apply the same rules
through ``nul_in``, ``declared_over`` and ``too_large``."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jaif.errors import InvalidRequest, JaifError, PayloadTooLarge
from jaif.web.errors import json_error


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def declared_over(value: bytes, limit: int) -> bool:
    """Whether a Content-Length header's ``value`` declares a body over ``limit`` bytes."""
    return value.isdigit() and int(value) > limit


class BodyLimit:
    """``larger``: paths with a limit of their own (POST /v1/files takes files larger than any request;
    its route bounds the file itself as it reads it, files/upload.py)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope["query_string"]:  # (ids in paths are checked by their services: 404, no query)
            await _refuse(scope, receive, send, nul_in(scope["query_string"]))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if declared_over(value, limit):
                    await _refuse(scope, receive, send, too_large(limit))
                    return
                break
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited, send)


def nul_in(query: bytes) -> InvalidRequest:
    """The 400 for a query string with a NUL character, naming the parameter that has it."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    name = next((k for k, v in pairs if "\x00" in k or "\x00" in v), None)
    return InvalidRequest(
        "The query string may not contain NUL characters (%00).",
        param=name if name is not None and "\x00" not in name else None,
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, error: JaifError) -> None:
    await json_error(error)(scope, receive, send)
