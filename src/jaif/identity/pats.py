"""Personal access tokens: a user's bearer tokens for /api/v1 (``jaifpat-…``), stored as SHA-256 only."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jaif.access.models import User
from jaif.db.base import utcnow
from jaif.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from jaif.identity import secret_tokens
from jaif.identity.models import PersonalAccessToken

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# last_used_at is written at most this often per token, so reads do not each cost a write.
TOUCH_EVERY = timedelta(seconds=60)
# An account whose address is unconfirmed holds no token or key (someone else may have signed up with it).
UNVERIFIED = (
    "Confirm your e-mail address first: open the link we sent you (or send a new one from your account page). "
    "Accounts with an unconfirmed address cannot hold tokens or keys."
)


def create(
    *, session: Session, user_id: str, name: str = "", expires_at: datetime | None = None
) -> tuple[PersonalAccessToken, str]:
    """A new token; returns the row and the secret, which is not stored and cannot be shown again."""
    if len(name) > 200 or "\x00" in name:
        raise InvalidRequest("the name may have at most 200 characters, and no NUL characters", param="name")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidRequest("the expiry must be in the future", param="expires_in_days")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.email_verified_at is None:
        raise Forbidden(UNVERIFIED, code="email_unverified")
    secret = secret_tokens.new_personal_token()
    row = PersonalAccessToken(
        user_id=user_id,
        name=name.strip(),
        token_hash=secret_tokens.digest(secret),
        prefix=secret_tokens.display_prefix(secret),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, secret


def list_for(*, session: Session, user_id: str) -> list[PersonalAccessToken]:
    query = (
        select(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == user_id)
        .order_by(PersonalAccessToken.created_at.desc(), PersonalAccessToken.id)
    )
    return list(session.scalars(query))


def revoke(*, session: Session, user_id: str, token_id: str) -> PersonalAccessToken:
    """Revoke one of the user's tokens (by id or prefix); another user's token is NotFound, as if absent."""
    row = None if not _ID.match(token_id) else session.scalar(
        select(PersonalAccessToken).where(
            PersonalAccessToken.user_id == user_id,
            (PersonalAccessToken.id == token_id) | (PersonalAccessToken.prefix == token_id),
        )
    )
    if row is None:
        raise NotFound(f"you have no token {token_id!r}", param="token_id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    session.flush()
    return row


def authenticate(*, session: Session, secret: str) -> User:
    """The user a token speaks for, or Unauthorized: unknown, revoked, expired, or the user is disabled."""
    if not secret_tokens.is_personal_token(secret):
        raise Unauthorized("This is not a personal access token (they start with jaifpat-).")
    digest = secret_tokens.digest(secret)
    row = session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_hash == digest))
    if row is None:
        raise Unauthorized("Unknown personal access token.")
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthorized("This personal access token has been revoked.", code="revoked_token")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("This personal access token has expired.", code="expired_token")
    user = row.user
    if not user.is_active:
        raise Unauthorized("The account of this token is disabled.", code="account_disabled")
    if user.email_verified_at is None:
        raise Unauthorized(UNVERIFIED, code="email_unverified")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
        session.flush()
    return user


def revoke_all(*, session: Session, user_id: str) -> int:
    """Revoke every live token of the user (a password reset, verification, linking single sign-on)."""
    done = session.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == user_id, PersonalAccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(done, "rowcount", 0) or 0)
