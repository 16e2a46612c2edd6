"""Security headers on every response of the portal and the API, precomputed once.

- ``Content-Security-Policy``: scripts, styles, images, fonts and fetches from jaif itself only; no inline
  script or style (the templates load /static files), no plugins, no <base> elsewhere, forms post back
  to jaif, and no site may frame a page (``frame-ancestors 'none'``).
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``.
- ``X-Content-Type-Options: nosniff``: a body is never run as something other than its content type.
- ``Referrer-Policy: same-origin``: links out of the portal do not carry its URLs (which may hold a
  one-time token, e.g. /reset-password?token=…).
- ``Cache-Control: no-store`` on every answer that does not say otherwise: the portal's pages and the
  API's answers are private, and some show a secret once (a new API key, a personal access token).
  Static files (/static, /docs/assets) keep their own caching.

The OpenAI-compatible API's answers (paths under /v1, and /tokenize and /detokenize: JSON, event
streams and file contents, never a page) carry what OWASP's REST Security Cheat Sheet asks of API
answers instead (``API_HEADERS``): ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``, nosniff and
no-store, with a policy stricter than the pages' besides, under which an answer opened in a browser
loads nothing (``default-src 'none'``). A referrer policy governs what a page's links and loads send;
such an answer has none to govern.

Every answer of that API (``API_PREFIXES``) also carries ``X-Request-Id`` (web/request_ids.py): the hot
endpoints set the gateway's own; any other answer there without one gets the client's sane id, else a
new one.

A route may set any of these itself (the API documentation pages, which need a looser style policy,
web/docs.py); what it set is kept. The hot /v1 endpoints (inference/endpoints.py) answer outside this
middleware, ahead of it on the app's edge: their answers carry these headers as constant bytes
(``ANSWER_HEADERS``), and their refusals get them from ``adding_headers``, as every other answer does.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jaif.web.request_ids import HEADER as REQUEST_ID
from jaif.web.request_ids import header_of, new_request_id

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
NOSNIFF = (b"x-content-type-options", b"nosniff")
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    NOSNIFF,
    (b"referrer-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The /v1 answers' (above): also shorter on every answer, where each header costs the hot path (uvicorn
# checks each one's name and value with a regular expression).
API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", API_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    NOSNIFF,
)
# What an answer that sets its own headers as constant bytes carries (the hot /v1 endpoints' JSON answers):
# every header SecurityHeaders would add to a /v1 answer, no-store included.
ANSWER_HEADERS: tuple[tuple[bytes, bytes], ...] = (*API_HEADERS, NO_STORE)
# The OpenAI-compatible API's paths (vLLM's /tokenize and /detokenize beside /v1's): API_HEADERS, request ids.
API_PREFIXES = ("/v1", "/tokenize", "/detokenize")
# Paths whose answers may be cached (files that hold no secret); every other answer is no-store.
CACHEABLE_PREFIXES = ("/static/", "/docs/assets/")


class SecurityHeaders:
    """Adds HEADERS (and no-store) to each http response that does not carry them already."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, adding_headers(scope, send))


def adding_headers(scope: Scope, send: Send) -> Send:
    """``send``, adding to a response's head the security headers it does not carry (and no-store, and a
    /v1 answer's request id): what SecurityHeaders does to every answer, and the hot /v1 endpoints, which
    answer outside it with ANSWER_HEADERS, to their refusals."""
    path = scope["path"]
    cacheable = path.startswith(CACHEABLE_PREFIXES)
    api = path.startswith(API_PREFIXES)
    security = API_HEADERS if api else HEADERS

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in security if h[0] not in present)
            if not cacheable and b"cache-control" not in present:
                headers.append(NO_STORE)
            if api and REQUEST_ID not in present:
                headers.append((REQUEST_ID, header_of(scope["headers"]) or new_request_id()))
            message["headers"] = headers
        await send(message)

    return send_with_headers
