"""FastAPI dependencies shared by the REST API (/api/v1) and the portal.

- ``DB``: a database session per request, one transaction.
- ``CurrentActor`` / ``OptionalActor`` / ``Operator``: who is acting, for the API. A personal access
  token (``Authorization: Bearer jaifpat-…``) for scripts, else the signed-in user of the portal
  session cookie. No one: 401 (JSON under /api).
- ``PageUser`` / ``PageOperator``: the same for portal pages, where no one signed in means a redirect
  to /login?next=<this page> instead of a 401.
- ``MailerDep``: where identity mail goes, with links to the public URL.
- ``IdentityConf``: the identity settings.

identity/service.py resolves tokens and session users.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.config import IdentitySettings, Settings
from jaif.errors import Forbidden, Unauthorized
from jaif.identity import service as identity
from jaif.identity.mail import Mailer
from jaif.web.session import login_url


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
    user_id = data.get("user_id")
    if not user_id:
        return None
    actor = identity.actor_from_user_id(session=session, user_id=user_id, stamp=data.get("stamp"))
    if actor is None:  # the account is gone or disabled, or its password changed: this session ends
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
    """Where users reach the portal: JAIF_IDENTITY__PUBLIC_URL, else the address of this request."""
    configured = request.app.state.settings.identity.public_url
    return (configured or str(request.base_url)).rstrip("/")


def mailer(request: Request) -> Mailer:
    s: Settings = request.app.state.settings
    return Mailer(smtp=s.smtp, outbox=s.outbox_dir, base_url=public_base_url(request))


IdentityConf = Annotated[IdentitySettings, Depends(identity_settings)]
MailerDep = Annotated[Mailer, Depends(mailer)]
