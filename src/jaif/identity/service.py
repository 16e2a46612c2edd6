"""Identity services: local accounts (sign-up, sign-in, e-mail verification, password reset), the
acting user of a request (portal session or personal access token), and the current user's view.

Secrets sent by e-mail are OneTimeToken rows holding only a SHA-256; each works once, until it expires.
Sign-in does the same argon2 work whether or not the account exists, so its timing does not say which
e-mail addresses have accounts.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import Organisation, Project, ProjectMember, User
from jaif.access.schemas import Actor
from jaif.access.secrets import hash_password, verify_password
from jaif.config import IdentitySettings
from jaif.db.base import contains_pattern, utcnow
from jaif.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from jaif.identity import emails, pats, secret_tokens, sessions, throttle
from jaif.identity.models import OneTimeToken, SsoIdentity, TokenPurpose
from jaif.identity.policy import password_problem
from jaif.identity.schemas import Me, Membership, OrganisationRef
from jaif.notify.mail import Mailer

# A hash of a throw-away password: sign-in verifies against it when the account does not exist.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$SmWyQ4LmpkPTOrLMiMeLig$QVY7vMrTI1VSYrMkVvLzco2hII1aKT9DJ55jMW8Aw5g"
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WRONG_CREDENTIALS = "The e-mail address or the password is wrong."


class FieldErrors(InvalidRequest):
    """Several fields of a form are wrong at once: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, param=field)
        self.errors = errors


def normalise_email(email: str) -> str:
    return email.strip()


def email_problem(email: str) -> str | None:
    if not email:
        return "Enter your e-mail address."
    if len(email) > 320 or not _EMAIL.match(email):
        return "Enter an e-mail address such as ada@example.org."
    return None


def wellformed_id(value: str) -> bool:
    """Ids and prefixes in paths: anything else (NUL bytes, kilobytes) matches nothing, without a query."""
    return bool(_ID.match(value))


def find_user(*, session: Session, email: str) -> User | None:
    if email_problem(normalise_email(email)):
        return None
    return session.scalar(select(User).where(func.lower(User.email) == normalise_email(email).lower()))


# --- sign-up and sign-in ---------------------------------------------------------------------------


def sign_up(
    *,
    session: Session,
    email: str,
    name: str,
    password: str,
    organisation_id: str | None,
    settings: IdentitySettings,
    mailer: Mailer,
) -> User:
    """Create a local account and send the verification link. Raises FieldErrors naming each bad field."""
    email, name = normalise_email(email), name.strip()
    errors: dict[str, str] = {}
    if problem := email_problem(email):
        errors["email"] = problem
    elif find_user(session=session, email=email) is not None:
        errors["email"] = "An account with this e-mail address exists already: sign in, or reset its password."
    if not name:
        errors["name"] = "Enter your name."
    elif len(name) > 200:
        errors["name"] = "Use at most 200 characters."
    elif _CONTROL.search(name):
        errors["name"] = "Use letters, digits and punctuation only."
    if problem := password_problem(password, email=email, min_length=settings.password_min_length):
        errors["password"] = problem
    if organisation_id and (not wellformed_id(organisation_id) or session.get(Organisation, organisation_id) is None):
        errors["organisation_id"] = "Choose an organisation from the list."
    if errors:
        raise FieldErrors(errors)
    user = User(email=email, name=name, password_hash=hash_password(password), organisation_id=organisation_id or None)
    session.add(user)
    session.flush()
    send_verification(session=session, user=user, settings=settings, mailer=mailer)
    return user


def authenticate(*, session: Session, email: str, password: str) -> User:
    """The user with this e-mail address and password, or Unauthorized (the same message either way)."""
    user = find_user(session=session, email=email)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = verify_password(stored, password[:1024])
    if user is None or not user.password_hash or not ok:
        raise Unauthorized(WRONG_CREDENTIALS, code="wrong_credentials")
    if not user.is_active:
        raise Forbidden("This account is disabled. Ask the operators of the AI Factory.", code="account_disabled")
    return user


def sign_in(
    *, session: Session, settings: IdentitySettings, email: str, password: str, address: str | None
) -> User:
    """``authenticate``, throttled (identity/throttle.py): RateLimited while the account or the client's
    address has had too many failed sign-ins; a failure counts against both, a success clears the account."""
    throttle.check(session=session, settings=settings, email=email, address=address)
    try:
        user = authenticate(session=session, email=email, password=password)
    except Unauthorized:
        throttle.failed(session=session, settings=settings, email=email, address=address)
        raise
    throttle.cleared(session=session, email=email)
    return user


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


def start_session(*, session: Session, user: User, settings: IdentitySettings) -> str:
    """Record a new portal session for the user; returns the random id its cookie carries."""
    return sessions.start(session=session, user_id=user.id, max_age_s=settings.session_max_age_s)


def end_session(*, session: Session, session_id: str | None) -> None:
    """Sign-out: the session ends on the server, so a copy of its cookie is worthless."""
    sessions.end(session=session, session_id=session_id)


def actor_from_session(*, session: Session, session_id: str | None) -> Actor | None:
    """The actor of a portal session; None when it is unknown, ended or expired, or the user is disabled."""
    user = sessions.user_of(session=session, session_id=session_id)
    return actor_of(user) if user is not None else None


def end_credentials(*, session: Session, user_id: str) -> None:
    """End every session and revoke every personal access token of the user: whoever held the account
    before its mailbox was proved (a sign-up with someone else's address) keeps nothing."""
    sessions.end_all(session=session, user_id=user_id)
    pats.revoke_all(session=session, user_id=user_id)


def actor_from_token(*, session: Session, token: str) -> Actor:
    """The actor of a personal access token, or Unauthorized (unknown, revoked, expired, disabled user)."""
    if token.startswith("jaif-"):
        raise Unauthorized(
            "Project API keys (jaif-…) work for the inference API under /v1. "
            "Use a personal access token (jaifpat-…) for /api/v1.",
            code="wrong_token_kind",
        )
    return actor_of(pats.authenticate(session=session, secret=token))


def change_password(*, session: Session, user_id: str, current: str, new: str, settings: IdentitySettings) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.password_hash and not verify_password(user.password_hash, current[:1024]):
        raise FieldErrors({"current_password": "This is not your current password."})
    if problem := password_problem(new, email=user.email, min_length=settings.password_min_length):
        raise FieldErrors({"password": problem})
    user.password_hash = hash_password(new)
    sessions.end_all(session=session, user_id=user.id)  # every browser; the caller signs this one in anew
    session.flush()
    return user


# --- one-time tokens: verification, reset, invitation ----------------------------------------------


def issue_one_time(
    *,
    session: Session,
    purpose: TokenPurpose,
    email: str,
    lifetime: timedelta,
    user_id: str | None = None,
    project_id: str | None = None,
    project_role: str | None = None,
    created_by_id: str | None = None,
) -> tuple[OneTimeToken, str]:
    """Store a new one-time token (its hash only); returns the row and the secret for the link."""
    secret = secret_tokens.new_one_time_token()
    row = OneTimeToken(
        purpose=purpose,
        token_hash=secret_tokens.digest(secret),
        email=email,
        user_id=user_id,
        project_id=project_id,
        project_role=project_role,
        created_by_id=created_by_id,
        expires_at=utcnow() + lifetime,
    )
    session.add(row)
    session.flush()
    return row, secret


def find_one_time(*, session: Session, purpose: TokenPurpose, secret: str) -> OneTimeToken:
    """The unused, unexpired token of this purpose behind ``secret``, or InvalidRequest saying why not."""
    row = session.scalar(
        select(OneTimeToken).where(
            OneTimeToken.token_hash == secret_tokens.digest(secret), OneTimeToken.purpose == purpose
        )
    )
    if row is None:
        raise InvalidRequest("This link is not valid. Check that you copied all of it.", code="invalid_link")
    if row.used_at is not None:
        raise InvalidRequest("This link has been used already.", code="used_link")
    if row.expires_at <= utcnow():
        raise InvalidRequest("This link has expired. Ask for a new one.", code="expired_link")
    return row


def consume_one_time(*, session: Session, row: OneTimeToken) -> None:
    """Mark the token used; exactly one of two concurrent redemptions succeeds."""
    done = session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == row.id, OneTimeToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:  # a CursorResult: how many rows the UPDATE changed
        raise InvalidRequest("This link has been used already.", code="used_link")
    session.refresh(row)


def send_verification(*, session: Session, user: User, settings: IdentitySettings, mailer: Mailer) -> None:
    _row, secret = issue_one_time(
        session=session,
        purpose=TokenPurpose.verify_email,
        email=user.email,
        user_id=user.id,
        lifetime=timedelta(hours=settings.verify_email_hours),
    )
    body = emails.verify_email_body(
        name=user.name, link=mailer.link(f"/verify-email?token={secret}"), hours=settings.verify_email_hours
    )
    mailer.send(session=session, to=user.email, subject="Confirm your e-mail address", body=body, withhold=(secret,))


def verify_email(*, session: Session, token: str) -> User:
    row = find_one_time(session=session, purpose=TokenPurpose.verify_email, secret=token)
    user = session.get(User, row.user_id) if row.user_id else None
    if user is None or user.email.lower() != row.email.lower():
        raise InvalidRequest("This link is for an e-mail address the account no longer has.", code="invalid_link")
    consume_one_time(session=session, row=row)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        end_credentials(session=session, user_id=user.id)
    session.flush()
    return user


def request_password_reset(*, session: Session, email: str, settings: IdentitySettings, mailer: Mailer) -> None:
    """Send a reset link if an active account has this address; say nothing either way."""
    user = find_user(session=session, email=email)
    if user is None or not user.is_active:
        return
    _row, secret = issue_one_time(
        session=session,
        purpose=TokenPurpose.reset_password,
        email=user.email,
        user_id=user.id,
        lifetime=timedelta(hours=settings.reset_password_hours),
    )
    body = emails.reset_password_body(
        link=mailer.link(f"/reset-password?token={secret}"), hours=settings.reset_password_hours
    )
    mailer.send(session=session, to=user.email, subject="Reset your password", body=body, withhold=(secret,))


def reset_password(*, session: Session, token: str, password: str, settings: IdentitySettings) -> User:
    """Set a new password through a reset link. The link proves the mailbox, so the address counts as verified."""
    row = find_one_time(session=session, purpose=TokenPurpose.reset_password, secret=token)
    user = session.get(User, row.user_id) if row.user_id else None
    if user is None or not user.is_active:
        raise InvalidRequest("This link is not valid any more.", code="invalid_link")
    if problem := password_problem(password, email=user.email, min_length=settings.password_min_length):
        raise FieldErrors({"password": problem})
    consume_one_time(session=session, row=row)
    # Other reset links of this user stop working too.
    session.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user.id,
            OneTimeToken.purpose == TokenPurpose.reset_password,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    user.password_hash = hash_password(password)
    end_credentials(session=session, user_id=user.id)
    throttle.cleared(session=session, email=user.email)
    if user.email_verified_at is None and user.email.lower() == row.email.lower():
        user.email_verified_at = utcnow()
    session.flush()
    return user


# --- the operator's changes to accounts ------------------------------------------------------------------


def set_role(*, session: Session, email: str, role: str) -> User:
    """Change a user's platform role; the user's sessions end (they sign in again under the new role)."""
    if role not in access.ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(access.ROLES)}", param="role")
    user = access.get_user(session=session, email=email)
    if user.role != role:
        user.role = role
        sessions.end_all(session=session, user_id=user.id)
    session.flush()
    return user


def set_active(*, session: Session, email: str, active: bool) -> User:
    """Disable or re-enable an account. Disabling ends its sessions at once (its tokens are refused while
    it is disabled)."""
    user = access.get_user(session=session, email=email)
    user.is_active = active
    if not active:
        sessions.end_all(session=session, user_id=user.id)
    session.flush()
    return user


# --- operators manage accounts --------------------------------------------------------------------


def _users_query(search: str | None, role: str | None, active: bool | None):
    query = select(User)
    if search and search.strip():
        pattern = contains_pattern(search, param="search")
        query = query.where(func.lower(User.email).like(pattern, escape="\\") |
                            func.lower(User.name).like(pattern, escape="\\"))
    if role is not None:
        if role not in access.ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(access.ROLES)}", param="role")
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    return query


def _manages_accounts(actor: Actor) -> None:
    if not actor.is_operator:
        raise Forbidden("Only operators manage accounts.")


def list_users(
    *, session: Session, actor: Actor, search: str | None = None, role: str | None = None,
    active: bool | None = None, limit: int | None = None, offset: int = 0,
) -> list[User]:
    """Accounts for operators, by e-mail address: ``search`` finds a part of the address or the name
    (case-insensitive), ``role`` and ``active`` filter."""
    _manages_accounts(actor)
    query = _users_query(search, role, active).order_by(User.email).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_users(
    *, session: Session, actor: Actor, search: str | None = None, role: str | None = None, active: bool | None = None
) -> int:
    _manages_accounts(actor)
    counted = _users_query(search, role, active).with_only_columns(func.count(User.id)).order_by(None)
    return session.scalar(counted) or 0


def reviewers(*, session: Session) -> list[User]:
    """The reviewer pool: active accounts with the reviewer role, by e-mail address."""
    return list(session.scalars(
        select(User).where(User.role == "reviewer", User.is_active.is_(True)).order_by(User.email)
    ))


def change_user(
    *, session: Session, actor: Actor, email: str, role: str | None = None, active: bool | None = None
) -> User:
    """An operator changes an account's role or deactivates (or reactivates) it; its sessions end. An
    operator cannot take their own operator role away or deactivate themselves: another operator must."""
    _manages_accounts(actor)
    user = access.get_user(session=session, email=email)
    if user.id == actor.user_id and ((role is not None and role != "operator") or active is False):
        raise Forbidden("You cannot take away your own operator role or deactivate yourself: "
                        "another operator can.")
    if role is not None:
        set_role(session=session, email=user.email, role=role)
    if active is not None:
        set_active(session=session, email=user.email, active=active)
    return user


# --- the current user --------------------------------------------------------------------------------


def get_user(*, session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def me(*, session: Session, actor: Actor) -> Me:
    """The acting user with platform role, organisation and project memberships: only their own data."""
    if actor.user_id is None:
        raise NotFound("The command line acts as an operator without an account.")
    user = get_user(session=session, user_id=actor.user_id)
    rows = session.execute(
        select(ProjectMember.role, Project.id, Project.name)
        .join(Project, Project.id == ProjectMember.project_id)
        .where(ProjectMember.user_id == user.id)
        .order_by(Project.name)
    ).all()
    projects = [Membership(project_id=pid, project_name=pname, role=role) for role, pid, pname in rows]
    issuers = list(session.scalars(select(SsoIdentity.issuer).where(SsoIdentity.user_id == user.id)))
    roles = [user.role] + (["pi"] if any(m.role == "pi" for m in projects) else [])
    return Me(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        roles=roles,
        email_verified=user.email_verified_at is not None,
        organisation=OrganisationRef.model_validate(user.organisation) if user.organisation else None,
        projects=projects,
        sso_providers=sorted(issuers),
        created_at=user.created_at,
    )
