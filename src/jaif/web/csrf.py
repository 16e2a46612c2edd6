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

Sign-in and sign-up forms are covered too, so another site cannot sign a visitor into its own account.
"""

from __future__ import annotations

import secrets

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
        supplied = headers.get(HEADER)
        replay = receive
        if supplied is None and content_type in FORM_TYPES:
            try:
                messages = await _read_all(receive)
            except PayloadTooLarge as exc:
                await self._refuse(scope, send, exc)
                return
            replay = _replayer(messages)
            supplied = await _form_token(scope, _replayer(messages))
        expected = scope.get("session", {}).get(SESSION_KEY)
        if not expected or not supplied or not secrets.compare_digest(str(expected), str(supplied)):
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


async def _read_all(receive: Receive) -> list[Message]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replayer(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


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
