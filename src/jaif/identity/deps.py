"""FastAPI dependencies for who is acting, shared by the REST API (/api/v1) and the portal's pages.

- ``CurrentActor`` / ``OptionalActor`` / ``Operator``: who is acting, for the API. A personal access
  token (``Authorization: Bearer jaifpat-…``) for scripts, else the user of the server-side session the
  portal cookie names (identity/sessions.py). No one: 401 (JSON under /api).
- ``PageUser`` / ``PageOperator``: the same for portal pages, where no one signed in means a redirect
  to /login?next=<this page> (web/deps.py's ``SignInRequired``) instead of a 401.

identity/service.py resolves tokens and session users.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jaif.access.schemas import VISITOR, Actor
from jaif.errors import Forbidden, Unauthorized
from jaif.identity import service as identity
from jaif.web.deps import DB, SignInRequired
from jaif.web.session import SESSION_ID, session_id


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


def user_or_visitor(actor: OptionalActor) -> Actor:
    """For the public pages: the signed-in user, or VISITOR (sees what is published, acts on nothing)."""
    return actor if actor is not None else VISITOR


PageUser = Annotated[Actor, Depends(require_user)]
PageVisitor = Annotated[Actor, Depends(user_or_visitor)]
PageOperator = Annotated[Actor, Depends(require_operator_page)]
