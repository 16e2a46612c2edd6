"""The portal session: who is signed in, flash messages, and where to go after signing in.

The session is a cookie signed with JAIF_WEB__SECRET_KEY (Starlette's SessionMiddleware: HttpOnly,
SameSite=Lax, Secure where the portal is reached over HTTPS). It holds the user's id, a stamp that
changes with the password (so a password reset signs other browsers out), what the navigation shows,
the CSRF token and pending flash messages. Nothing secret.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit

from starlette.requests import Request

Category = Literal["success", "info", "warning", "error"]
_FLASHES = "_flashes"


def sign_in(request: Request, *, user_id: str, stamp: str, email: str, name: str, role: str) -> None:
    """Start a fresh session for the user (a new CSRF token too; nothing of the old session carries over)."""
    request.session.clear()
    request.session.update(user_id=user_id, stamp=stamp, user={"email": email, "name": name, "role": role})


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in_user(request: Request) -> dict | None:
    """What the navigation shows about the signed-in user ({"email", "name", "role"}), or None."""
    if "session" not in request.scope:
        return None
    return request.session.get("user") if request.session.get("user_id") else None


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
