"""FastAPI dependencies of the HTTP layer, shared by the REST API (/api/v1) and the portal; none knows a
concept (who is acting is identity/deps.py's, where mail goes notify/deps.py's).

- ``DB``: a database session per request, one transaction.
- ``IdentityConf``: the identity settings.
- ``public_base_url``: where users reach the portal, for links (never the request's Host header).
- ``SignInRequired``: raised by a page's dependency when no one is signed in; ``sign_in_redirect``, its
  handler, answers with a redirect to /login?next=<the page>.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.config import IdentitySettings, Settings
from jaif.served import served_url
from jaif.web.session import login_url


def db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    factory = request.app.state.runtime.session_factory
    with factory() as session, session.begin():
        request.state.db = session  # the page's templates read through it too (a second connection would
        yield session  # wait on SQLite for this transaction's write lock)


# scope="function": the transaction commits before the response is sent, so what a client reads next
# (after a redirect, say) is there, and a failed commit is the answer rather than lost after a 200.
DB = Annotated[Session, Depends(db, scope="function")]


class SignInRequired(Exception):
    """Raised by page dependencies when no one is signed in; the app answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def sign_in_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(login_url(exc.next_path), status_code=303)


def settings(request: Request) -> Settings:
    return request.app.state.settings


def identity_settings(request: Request) -> IdentitySettings:
    return request.app.state.settings.identity


def public_base_url(request: Request) -> str:
    """Where users reach the portal: JAIF_IDENTITY__PUBLIC_URL, else the address `jaif serve` listens on.

    Never the request's Host header, which the client chooses (a reset link to another site)."""
    return served_url(request.app.state.settings)


IdentityConf = Annotated[IdentitySettings, Depends(identity_settings)]
