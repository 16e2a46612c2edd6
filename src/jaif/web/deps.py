"""FastAPI dependencies shared by the REST API (/api/v1) and the portal.

- ``DB``: a database session per request, one transaction.
- ``CurrentActor`` / ``OptionalActor`` / ``Operator``: who is acting, for the API. A personal access
  token (``Authorization: Bearer jaifpat-…``) for scripts, else the user of the server-side session the
  portal cookie names (identity/sessions.py). No one: 401 (JSON under /api).
- ``PageUser`` / ``PageOperator``: the same for portal pages, where no one signed in means a redirect
  to /login?next=<this page> instead of a 401.
- ``MailerDep``: where identity mail goes, with links to the public URL (or the served address; never
  the request's Host header).
- ``IdentityConf``: the identity settings.

identity/service.py resolves tokens and session users.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.config import IdentitySettings, Settings
from jaif.errors import Forbidden, Unauthorized
from jaif.identity import service as identity
from jaif.notify.mail import Mailer
from jaif.web.session import SESSION_ID, login_url, session_id


def db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    factory = request.app.state.runtime.session_factory
    with factory() as session, session.begin():
        yield session


# scope="function": the transaction commits before the response is sent, so what a client reads next
# (after a redirect, say) is there, and a failed commit is the answer rather than lost after a 200.
DB = Annotated[Session, Depends(db, scope="function")]


def optional_actor(request: Request, session: DB) -> Actor | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must be 'Bearer YOUR_TOKEN'.")
        return identity.actor_from_token(session=session, token=token.strip())
    if "session" not in request.scope:
        return None
    data = request.session
    if not data.get("user_id") and not data.get(SESSION_ID):
        return None
    # Who is signed in is the server's record: a cookie without a live session id (ended, expired, an old
    # or forged cookie with only a user id) is no one, and is cleared.
    actor = identity.actor_from_session(session=session, session_id=session_id(request))
    if actor is None:
        data.clear()
    return actor


def current_actor(actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    if actor is None:
        raise Unauthorized("Sign in, or send a personal access token as 'Authorization: Bearer TOKEN'.")
    return actor


def operator(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if not actor.is_operator:
        raise Forbidden("Only operators may do this.")
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
OptionalActor = Annotated[Actor | None, Depends(optional_actor)]
Operator = Annotated[Actor, Depends(operator)]


class SignInRequired(Exception):
    """Raised by page dependencies when no one is signed in; the app answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def sign_in_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(login_url(exc.next_path), status_code=303)


def require_user(request: Request, actor: OptionalActor) -> Actor:
    """For portal pages: the signed-in user, or a redirect to /login?next=<this page>."""
    if actor is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path if request.method == "GET" else "/")
    return actor


def require_operator_page(actor: Annotated[Actor, Depends(require_user)]) -> Actor:
    if not actor.is_operator:
        raise Forbidden("Only operators may see this page.")
    return actor


PageUser = Annotated[Actor, Depends(require_user)]
PageOperator = Annotated[Actor, Depends(require_operator_page)]


def settings(request: Request) -> Settings:
    return request.app.state.settings


def identity_settings(request: Request) -> IdentitySettings:
    return request.app.state.settings.identity


def public_base_url(request: Request) -> str:
    """Where users reach the portal: JAIF_IDENTITY__PUBLIC_URL, else the address `jaif serve` listens on.

    Never the request's Host header, which the client chooses (a reset link to another site)."""
    return served_url(request.app.state.settings)


def served_url(settings: Settings) -> str:
    """JAIF_IDENTITY__PUBLIC_URL, else http://web.host:web.port (this machine's name for a wildcard bind)."""
    if settings.identity.public_url:
        return settings.identity.public_url.rstrip("/")
    host = settings.web.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def mailer(request: Request) -> Mailer:
    s: Settings = request.app.state.settings
    return Mailer(smtp=s.smtp, outbox=s.outbox_dir, base_url=public_base_url(request))


IdentityConf = Annotated[IdentitySettings, Depends(identity_settings)]
MailerDep = Annotated[Mailer, Depends(mailer)]
