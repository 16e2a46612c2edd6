"""Cross-site request forgery protection: a synchroniser token in the signed session.

Every form carries the session's token in a hidden ``csrf_token`` field (``{{ csrf_input() }}`` in a
template); scripts send it as the ``X-CSRF-Token`` header. CsrfMiddleware refuses, with 403, any request
that changes state (not GET, HEAD, OPTIONS) without the right token, except where no browser can be
tricked into sending it:

- requests with an ``Authorization: Bearer TOKEN`` header (personal access tokens, API keys: never sent
  by a browser on its own; such a request is authenticated by its token alone, web/deps.py never falls
  back to the session cookie);
- the inference API under /v1 (bearer keys only; the session is not read there),
- calls under /api/ from a browser that is not signed in (nothing to forge with).

A JSON body is no exemption: the portal's own scripts send the token as ``X-CSRF-Token`` (read from
``<meta name="csrf-token">``), so a cookie-authenticated call never relies on the content type alone.

A multipart form (an upload: a job's script, a project's file) is read only as far as its token, which
``csrf_input()`` puts first in every form: the rest (a file of up to ``files.max_bytes``) streams on to
the route, never held here. A url-encoded form (small: the body limit) is read whole.

Sign-in and sign-up forms are covered too, so another site cannot sign a visitor into its own account.
"""

from __future__ import annotations

import secrets

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jaif.errors import Forbidden, JaifError, PayloadTooLarge

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SESSION_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
REFUSED = (
    "This form could not be accepted: it has expired, or it was sent from another site. "
    "Go back, reload the page and send it again."
)


def csrf_token(request: Request) -> str:
    """The session's token, made on first use (the session middleware then stores it in the cookie)."""
    token = request.session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def _bearer(authorization: str | None) -> bool:
    """Whether the request carries a bearer token: ``Bearer`` (any case) and a non-empty token."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _exempt(scope: Scope, headers: Headers) -> bool:
    path: str = scope["path"]
    if scope["method"] in SAFE_METHODS or path.startswith("/v1/") or path == "/v1":
        return True
    if _bearer(headers.get("authorization")):
        return True
    return path.startswith("/api/") and not scope.get("session", {}).get("user_id")


class CsrfMiddleware:
    """Checks the token of state-changing requests (see the module docstring). Sits inside SessionMiddleware."""

    def __init__(self, app: ASGIApp, *, refused=None) -> None:
        self.app = app
        # refused(request, error) -> Response renders the 403; defaults to the app's error rendering.
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if _exempt(scope, headers):
            await self.app(scope, receive, send)
            return
        expected = scope.get("session", {}).get(SESSION_KEY)
        if not expected:  # no session token to compare with: refused before a byte of the body is read
            await self._refuse(scope, send, Forbidden(REFUSED, code="csrf_failed"))
            return
        supplied = headers.get(HEADER)
        replay = receive
        boundary = _boundary(headers) if content_type == "multipart/form-data" else None
        if supplied is None and content_type in FORM_TYPES:
            try:
                if boundary:
                    supplied, messages = await _multipart_token(receive, boundary)
                    replay = _replayer(messages, then=receive)
                else:
                    messages = await _read_all(receive)
                    replay = _replayer(messages)
                    supplied = await _form_token(scope, _replayer(messages))
            except PayloadTooLarge as exc:
                await self._refuse(scope, send, exc)
                return
        if not supplied or not secrets.compare_digest(str(expected), str(supplied)):
            await self._refuse(scope, send, Forbidden(REFUSED, code="csrf_failed"))
            return
        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, error: JaifError) -> None:
        request = Request(scope)
        if self.refused is not None:
            response = self.refused(request, error)
        else:
            from jaif.web.errors import render

            response = render(request, error)
        await response(scope, _no_receive, send)


# What the check reads of a body to find its token: a url-encoded form whole, a multipart one up to the end
# of its token's part (the first of jaif's forms). Past this a form without its token is refused (403), so
# that no one can make the server hold a large body (an upload path takes files.max_bytes) for nothing.
TOKEN_READ_LIMIT = 1024 * 1024


async def _read_all(receive: Receive) -> list[Message]:
    messages = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        seen += len(message.get("body", b""))
        if seen > TOKEN_READ_LIMIT:
            raise PayloadTooLarge(f"A form is larger than the limit of {TOKEN_READ_LIMIT} bytes.")
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replayer(messages: list[Message], then: Receive | None = None) -> Receive:
    """The messages read, then (a body read only in part) the rest from ``then``."""
    pending = list(messages)
    whole = not messages or messages[-1]["type"] != "http.request" or not messages[-1].get("more_body", False)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None and not whole:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _boundary(headers: Headers) -> bytes | None:
    _kind, params = parse_options_header(headers.get("content-type", ""))
    return params.get(b"boundary") or None


class _TokenPart:
    """python-multipart's callbacks that keep the value of the form's ``csrf_token`` field, nothing else."""

    def __init__(self) -> None:
        self.header, self.value, self.disposition = b"", b"", b""
        self.name: bytes | None = None
        self.data = bytearray()
        self.token: str | None = None

    def callbacks(self) -> dict:
        return {
            "on_header_field": lambda d, s, e: setattr(self, "header", self.header + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "value", self.value + d[s:e]),
            "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
            "on_part_data": self._data, "on_part_end": self._end,
        }  # fmt: skip

    def _header_end(self) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition = self.value
        self.header, self.value = b"", b""

    def _headers_done(self) -> None:
        self.name = parse_options_header(self.disposition)[1].get(b"name")
        self.disposition, self.data = b"", bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.name == FIELD.encode() and len(self.data) < 1024:
            self.data += data[start:end]

    def _end(self) -> None:
        if self.name == FIELD.encode() and self.token is None:
            self.token = self.data.decode("utf-8", "replace")


async def _multipart_token(receive: Receive, boundary: bytes) -> tuple[str | None, list[Message]]:
    """The form's token, and the messages read to find it: up to the end of the token's part (the first of
    jaif's forms), or TOKEN_READ_LIMIT bytes, or the whole body if shorter, when it has none (then refused)."""
    part = _TokenPart()
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    messages: list[Message] = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        seen += len(message.get("body", b""))
        if seen > TOKEN_READ_LIMIT and part.token is None:
            return None, messages  # no token where jaif's forms put it: refused with 403
        try:
            parser.write(message.get("body", b""))
        except FormParserError:  # a malformed body carries no token: refused with 403
            return None, messages
        if part.token is not None or not message.get("more_body", False):
            return part.token, messages


async def _form_token(scope: Scope, receive: Receive) -> str | None:
    request = Request(scope, receive)
    try:
        form = await request.form()
    except (HTTPException, MultiPartException, ValueError, ClientDisconnect):
        return None  # a malformed body carries no token: the request is refused with 403, not failed
    try:
        value = form.get(FIELD)
        return value if isinstance(value, str) else None
    finally:
        await form.close()


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
