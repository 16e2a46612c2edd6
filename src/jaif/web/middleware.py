"""The browser-facing middleware of the app: the trusted-host check, the session cookie, the CSRF check,
and the answer to a page that needs someone signed in (a redirect to /login).

``install`` is called by create_app after the routes are mounted and before the outer middleware (the
body limit, security headers) is added, so that the order from the outside in is: security headers, body
limit, the hot /v1 endpoints (routes.mount_hot_routes: bearer keys, no cookies), trusted host (only with a
public URL), session cookie, CSRF check, the app.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response

from jaif.config import Settings
from jaif.errors import JaifError
from jaif.secret_key import secret_key
from jaif.web import errors
from jaif.web.csrf import CsrfMiddleware
from jaif.web.deps import SignInRequired, sign_in_redirect
from jaif.web.display import message_page

SESSION_COOKIE = "jaif_session"
# Always accepted with a public URL set: the server's own machine (health checks, local scripts). Links are
# never built from the Host header, so accepting these gives a hostile page nothing.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def trusted_hosts(settings: Settings) -> list[str] | None:
    """The Host names requests may name when a public URL is set (None: no public URL, no check)."""
    public_url = settings.identity.public_url
    if not public_url:
        return None
    host = urlsplit(public_url).hostname or ""
    return [h for h in dict.fromkeys([host, *settings.identity.trusted_hosts, *LOOPBACK_HOSTS]) if h]


def _refused(request: Request, error: JaifError) -> Response:
    """The 403 of a form without a valid CSRF token: JSON under /api, else a page that says what to do."""
    if request.url.path.startswith("/api/") or request.url.path.startswith("/v1/"):
        return errors.render(request, error)
    return message_page(request, title="Form not accepted", message=error.message, status_code=error.status)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    app.add_middleware(CsrfMiddleware, refused=_refused)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.identity.session_max_age_s,
        same_site="lax",
        https_only=settings.identity.cookie_https_only,
    )
    if (hosts := trusted_hosts(settings)) is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
