"""The portal session: who is signed in, flash messages, and where to go after signing in.

The session is a cookie signed with the secret key (JAIF_WEB__SECRET_KEY, or the one jaif generated in
data_dir/secret_key; Starlette's SessionMiddleware: HttpOnly, SameSite=Lax, Secure where the portal is
reached over HTTPS). Who is signed in is decided on the server: the cookie carries the random id of a
session recorded there (identity/sessions.py), which sign-out, a password change and the rest end. It
also holds the user's id (for the CSRF middleware's "signed in?" only, never trusted for who acts), what
the navigation shows, the CSRF token and pending flash messages.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit

from starlette.requests import Request

Category = Literal["success", "info", "warning", "error"]
_FLASHES = "_flashes"


SESSION_ID = "sid"


def sign_in(request: Request, *, session_id: str, user_id: str, email: str, name: str, role: str) -> None:
    """Start a fresh cookie for a server session (a new CSRF token too; nothing of the old cookie carries over)."""
    request.session.clear()
    request.session.update(
        {SESSION_ID: session_id, "user_id": user_id, "user": {"email": email, "name": name, "role": role}}
    )


def session_id(request: Request) -> str | None:
    """The id of the server session this browser's cookie names, if any (checked by identity.sessions)."""
    if "session" not in request.scope:
        return None
    value = request.session.get(SESSION_ID)
    return value if isinstance(value, str) else None


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in_user(request: Request) -> dict | None:
    """What the navigation shows about the signed-in user ({"email", "name", "role"}), or None."""
    if "session" not in request.scope:
        return None
    return request.session.get("user") if request.session.get(SESSION_ID) else None


def flash(request: Request, message: str, category: Category = "success") -> None:
    """A message shown once, on the next page rendered for this browser (after a redirect, typically)."""
    request.session.setdefault(_FLASHES, [])
    request.session[_FLASHES] = [*request.session[_FLASHES], [category, message]]


def pop_flashes(request: Request) -> list[tuple[str, str]]:
    if "session" not in request.scope:
        return []
    return [(c, m) for c, m in request.session.pop(_FLASHES, [])]


def safe_next(value: str | None, default: str = "/") -> str:
    """A path on this site to continue to; anything else (another host, a scheme) becomes ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="/")
