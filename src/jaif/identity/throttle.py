"""Failed sign-ins are counted, per account and per client address, and too many refuse sign-in for a while.

Kept in the database (``sign_in_throttles``), so that every server process refuses the same guesser:

- each failed sign-in counts against the account (a hash of the e-mail address as typed, lower-cased; an
  address without an account counts the same, so refusals tell nothing of who has one) and against the
  client's address, in a window of ``sign_in_window_s``;
- at ``sign_in_max_failures`` for the account, or ``sign_in_max_failures_per_address`` for the address,
  sign-in there is refused for ``sign_in_lockout_s``, even with the right password (RateLimited, 429);
- a successful sign-in, or a password reset, clears the account's count; the address's runs out.

Single sign-on is not throttled here: the identity provider guards its own passwords.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jaif.config import IdentitySettings
from jaif.db.base import utcnow
from jaif.errors import RateLimited
from jaif.identity.models import SignInThrottle


def _account(email: str) -> str:
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


def _address(address: str | None) -> str | None:
    return f"address:{address[:80]}" if address else None


def _keys(settings: IdentitySettings, email: str, address: str | None) -> dict[str, int]:
    keys = {_account(email): settings.sign_in_max_failures}
    if (by_address := _address(address)) is not None and settings.sign_in_max_failures_per_address > 0:
        keys[by_address] = settings.sign_in_max_failures_per_address
    return keys


def _wait(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'}" if seconds > 60 else f"{max(1, math.ceil(seconds))} seconds"


def check(*, session: Session, settings: IdentitySettings, email: str, address: str | None,
          now: datetime | None = None) -> None:
    """RateLimited while the account or the address is locked out; before the password is looked at."""
    now = now or utcnow()
    keys = _keys(settings, email, address)
    for row in session.scalars(select(SignInThrottle).where(SignInThrottle.key.in_(list(keys)))):
        if row.locked_until is not None and row.locked_until > now:
            left = (row.locked_until - now).total_seconds()
            whose = "this account" if row.key.startswith("account:") else "your network address"
            advice = " or reset your password" if row.key.startswith("account:") else ""
            raise RateLimited(
                f"Too many failed sign-ins for {whose}. Try again in {_wait(left)}{advice}.",
                param="email", code="too_many_sign_ins", retry_after=left,
            )


def failed(*, session: Session, settings: IdentitySettings, email: str, address: str | None,
           now: datetime | None = None) -> None:
    """Count a failed sign-in; the one that reaches a limit starts the lockout."""
    now = now or utcnow()
    window, lockout = timedelta(seconds=settings.sign_in_window_s), timedelta(seconds=settings.sign_in_lockout_s)
    # What has run out of its window and lockout counts no more: forget it.
    session.execute(
        delete(SignInThrottle)
        .where(SignInThrottle.window_start < now - window, SignInThrottle.locked_until.is_(None)
               | (SignInThrottle.locked_until < now))
        .execution_options(synchronize_session=False)
    )
    keys = _keys(settings, email, address)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    for key in sorted(keys):  # one order, so concurrent failures never deadlock
        session.execute(
            dialect.insert(SignInThrottle.__table__)
            .values(key=key, failures=0, window_start=now, locked_until=None)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = session.execute(
            select(SignInThrottle).where(SignInThrottle.key == key).with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if row.window_start + window <= now:
            row.failures, row.window_start = 0, now
        row.failures += 1
        if row.failures >= keys[key]:
            row.locked_until, row.failures, row.window_start = now + lockout, 0, now
    session.flush()


def cleared(*, session: Session, email: str) -> None:
    """The account's count starts again: its owner signed in, or set a new password through a reset link."""
    session.execute(
        delete(SignInThrottle).where(SignInThrottle.key == _account(email)).execution_options(synchronize_session=False)
    )
