"""Portal sessions, recorded on the server.

Signing in makes a UserSession row and a 256-bit random id; the browser's cookie (signed, HttpOnly)
carries that id, the row only its SHA-256. A request's session counts while its row is neither ended
nor expired and the user is active. ``end`` ends one session (sign-out); ``end_all`` ends every
session of a user (a password change or reset, a role change, deactivation, linking single sign-on,
verifying the e-mail address), so a copied or replayed cookie stops working at once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jaif.access.models import User
from jaif.db.base import utcnow
from jaif.identity import secret_tokens
from jaif.identity.models import UserSession

# last_seen_at is written at most this often per session, so page views do not each cost a write.
TOUCH_EVERY = timedelta(seconds=60)


def start(*, session: Session, user_id: str, max_age_s: int) -> str:
    """A new session for the user; returns the random id for the cookie (only its hash is stored)."""
    secret = secret_tokens.new_one_time_token()
    now = utcnow()
    session.add(
        UserSession(
            user_id=user_id,
            token_hash=secret_tokens.digest(secret),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=max_age_s),
        )
    )
    session.flush()
    return secret


def _find(session: Session, secret: str) -> UserSession | None:
    if not secret or len(secret) > 100:
        return None
    return session.scalar(select(UserSession).where(UserSession.token_hash == secret_tokens.digest(secret)))


def user_of(*, session: Session, session_id: str | None) -> User | None:
    """The active user of a live session, or None: unknown id, ended, expired, or the user is disabled."""
    row = _find(session, session_id or "")
    now = utcnow()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return user


def end(*, session: Session, session_id: str | None) -> None:
    """End one session (sign-out). Unknown or ended ids are ignored."""
    row = _find(session, session_id or "")
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()


def end_all(*, session: Session, user_id: str) -> int:
    """End every session of the user; returns how many were live."""
    done = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(done, "rowcount", 0) or 0)
