"""Access services: organisations, users, projects, members and API keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jaif.access.models import ApiKey, Organisation, Project, ProjectMember, ProjectRole, Sector, User
from jaif.access.schemas import KeyPrincipal
from jaif.access.secrets import (
    display_prefix,
    hash_api_key,
    hash_password,
    new_api_key,
    new_password,
)
from jaif.allocations import service as allocations
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from jaif.inference import revocation

ROLES = ("user", "reviewer", "operator")


def create_organisation(*, session: Session, name: str, sector: str, country: str) -> Organisation:
    if sector not in Sector.__members__:
        raise InvalidRequest(
            f"sector must be one of {', '.join(Sector.__members__)}, not {sector!r}", param="sector"
        )
    country = country.strip().upper()
    if len(country) != 2 or not country.isalpha():
        raise InvalidRequest("country must be a two-letter ISO 3166 code such as DE", param="country")
    if session.scalar(select(Organisation).where(Organisation.name == name)):
        raise Conflict(f"organisation {name!r} exists already", param="name")
    org = Organisation(name=name, sector=sector, country=country)
    session.add(org)
    session.flush()
    return org


def get_organisation(*, session: Session, name: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise NotFound(f"no organisation named {name!r}", param="org")
    return org


def create_user(*, session: Session, email: str, role: str = "user", name: str = "") -> tuple[User, str]:
    """Create a user with a one-time password; returns the user and the password (shown once)."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    if "@" not in email:
        raise InvalidRequest("email must be an e-mail address", param="email")
    if session.scalar(select(User).where(func.lower(User.email) == email.lower())):
        raise Conflict(f"a user with e-mail {email!r} exists already", param="email")
    password = new_password()
    # Made by an operator (the command line, first start), who vouches for the address.
    user = User(email=email, role=role, name=name, password_hash=hash_password(password), email_verified_at=utcnow())
    session.add(user)
    session.flush()
    return user, password


def get_user(*, session: Session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        raise NotFound(f"no user with e-mail {email!r}", param="email")
    return user


def create_project(
    *,
    session: Session,
    name: str,
    organisation: str,
    token_quota: int | None = None,
    allowed_models: list[str] | None = None,
    description: str = "",
) -> Project:
    org = get_organisation(session=session, name=organisation)
    if token_quota is not None and token_quota < 0:
        raise InvalidRequest("token quota must be zero or more", param="token_quota")
    if session.scalar(select(Project).where(Project.name == name)):
        raise Conflict(f"project {name!r} exists already", param="name")
    project = Project(
        name=name,
        organisation_id=org.id,
        allowed_models=allowed_models,
        description=description,
    )
    session.add(project)
    session.flush()
    if token_quota is not None:
        # The quota is derived from token allocations (allocations/token_quota.py): grant one for a year.
        allocations.grant_tokens(session=session, project_id=project.id, tokens=token_quota)
    return project


def get_project(*, session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"no project named {name!r}", param="project")
    return project


def set_token_quota(*, session: Session, project_name: str, token_quota: int | None) -> Project:
    """Replace the project's token allocations by one that makes its quota ``token_quota`` (never below
    what is spent or leased); None keeps a project without token allocations unlimited."""
    project = get_project(session=session, name=project_name)
    allocations.set_token_allowance(session=session, project_id=project.id, tokens=token_quota)
    return project


def add_member(*, session: Session, project_name: str, email: str, role: str = "member") -> ProjectMember:
    if role not in ProjectRole.__members__:
        raise InvalidRequest("role must be pi or member", param="role")
    project = get_project(session=session, name=project_name)
    user = get_user(session=session, email=email)
    member = ProjectMember(project_id=project.id, user_id=user.id, role=role)
    session.add(member)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{email} is a member of {project_name} already") from exc
    return member


def create_api_key(
    *,
    session: Session,
    project_name: str,
    user_email: str | None = None,
    name: str = "",
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored and cannot be shown again."""
    project = get_project(session=session, name=project_name)
    user = get_user(session=session, email=user_email) if user_email else None
    if user is not None and user.email_verified_at is None:
        # Someone else may have signed up with this address: an unconfirmed account holds no key.
        raise Forbidden(
            f"{user.email} is not confirmed yet: open the link we sent to it (or send a new one from the account "
            "page) before creating API keys. Accounts with an unconfirmed address cannot hold tokens or keys.",
            code="email_unverified",
        )
    for value, param in ((rpm_limit, "rpm_limit"), (tpm_limit, "tpm_limit")):
        if value is not None and value < 1:
            raise InvalidRequest(f"{param} must be at least 1", param=param)
    secret = new_api_key()
    key = ApiKey(
        project_id=project.id,
        user_id=user.id if user else None,
        name=name,
        key_hash=hash_api_key(secret),
        prefix=display_prefix(secret),
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    session.add(key)
    session.flush()
    return key, secret


def list_api_keys(*, session: Session, project_name: str) -> list[ApiKey]:
    """The project's keys; jobs' own keys are not the project's and are left out."""
    project = get_project(session=session, name=project_name)
    query = select(ApiKey).where(ApiKey.project_id == project.id, ApiKey.job_id.is_(None))
    return list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.id)))


def create_job_key(
    *, session: Session, project_id: str, user_id: str | None, job_id: str, expires_at: datetime
) -> str:
    """A key that belongs to one job (``compute_jobs.id``): charged to its project, listed nowhere, until
    ``expires_at`` or ``end_job_keys``. Returns the secret, which is never stored."""
    secret = new_api_key()
    session.add(ApiKey(project_id=project_id, user_id=user_id, name="job credential", key_hash=hash_api_key(secret),
                       prefix=display_prefix(secret), expires_at=expires_at, job_id=job_id))
    session.flush()
    return secret


def end_job_keys(*, session: Session, job_ids: list[str]) -> int:
    """Revoke the keys of jobs that ended; returns how many."""
    if not job_ids:
        return 0
    result = session.execute(update(ApiKey).where(ApiKey.job_id.in_(job_ids), ApiKey.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return cast(CursorResult, result).rowcount or 0  # an UPDATE's result is a CursorResult


def extend_job_key(*, session: Session, job_id: str, expires_at: datetime) -> None:
    """Move the expiry of a job's live key (a job that waited in the queue gets its whole time limit)."""
    session.execute(update(ApiKey).where(ApiKey.job_id == job_id, ApiKey.revoked_at.is_(None))
                    .values(expires_at=expires_at))


def revoke_api_key(*, session: Session, prefix: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        raise NotFound(f"no API key with prefix {prefix!r}", param="prefix")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    session.flush()
    # Gateways drop it from their key caches once this commits (at once here; elsewhere through Redis).
    revocation.key_revoked(session=session, key_hash=key.key_hash)
    return key


def authenticate_key(*, session: Session, secret: str) -> KeyPrincipal:
    """Resolve a bearer key to its principal, or raise Unauthorized (unknown, revoked, expired)."""
    row = session.execute(
        select(ApiKey, Project).join(Project, Project.id == ApiKey.project_id).where(
            ApiKey.key_hash == hash_api_key(secret)
        )
    ).first()
    if row is None:
        raise Unauthorized("Incorrect API key provided.")
    key, project = row
    return _principal(key, project)


def principal_of_key(*, session: Session, key_id: str) -> KeyPrincipal:
    """The principal of the key with this id, as authenticate_key gives it (for work a key started
    earlier, such as a batch): Unauthorized if it was deleted, revoked or expired since."""
    row = session.execute(
        select(ApiKey, Project).join(Project, Project.id == ApiKey.project_id).where(ApiKey.id == key_id)
    ).first()
    if row is None:
        raise Unauthorized("The API key that created this work no longer exists.", code="invalid_api_key")
    return _principal(*row)


def _principal(key: ApiKey, project: Project) -> KeyPrincipal:
    if key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise Unauthorized("This API key has expired.", code="expired_api_key")
    if not project.is_active:
        raise Unauthorized("The project of this API key is not active.", code="inactive_project")
    return KeyPrincipal(
        key_id=key.id,
        prefix=key.prefix,
        project_id=project.id,
        project_name=project.name,
        user_id=key.user_id,
        allowed_models=frozenset(project.allowed_models) if project.allowed_models is not None else None,
        has_quota=project.token_quota is not None,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        expires_at=key.expires_at,
    )


CHAT_KEY_NAME = "Chat in the portal"


def chat_principal(*, session: Session, project_id: str, user_id: str) -> KeyPrincipal:
    """Who a member's chat in the portal (chat/service.py) speaks for in a project: that member's key of the
    project named CHAT_KEY_NAME, made on first use. Its secret is thrown away when it is made (never stored,
    never shown, never sent to a browser), so the key serves nothing but the chat, which the gateway meters,
    limits and charges as it does an API call with any other key: the key's rate limits (or the defaults),
    its project's allowance, a usage record under its id. It is listed with the project's keys, where a PI
    may revoke it: that stops the member's chat in the project (Unauthorized, code revoked_api_key)."""
    row = session.execute(
        select(ApiKey, Project).join(Project, Project.id == ApiKey.project_id)
        .where(ApiKey.project_id == project_id, ApiKey.user_id == user_id, ApiKey.name == CHAT_KEY_NAME,
               ApiKey.job_id.is_(None))
        .order_by(ApiKey.created_at.desc()).limit(1)
    ).first()
    if row is not None:
        return _principal(*row)
    project = session.get(Project, project_id)
    user = session.get(User, user_id)
    if project is None or user is None:
        raise NotFound(f"no project {project_id!r}", param="project_id")
    key, _secret = create_api_key(session=session, project_name=project.name, user_email=user.email,
                                  name=CHAT_KEY_NAME)
    return _principal(key, project)


_TOUCH_KEY = (
    update(cast(Table, ApiKey.__table__)).where(ApiKey.id == bindparam("key")).values(last_used_at=bindparam("when"))
)


def touch_keys(*, session: Session, last_used: dict[str, datetime]) -> None:
    """Record when keys were last used (batched by the usage writer: one Core statement, no ORM work)."""
    if last_used:
        session.connection().execute(_TOUCH_KEY, [{"key": key, "when": when} for key, when in last_used.items()])


def list_organisations(*, session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def list_projects(*, session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))


# -- a project's token books: written by the gateway's metering (metering/quota.py), through these only.
# Invariant, kept by the conditional UPDATE in lease_tokens: tokens_spent + tokens_leased <= token_quota.
# Core statements built once: a usage flush runs spend_tokens for every project and lease it charges.

_SPEND = (
    update(cast(Table, Project.__table__))
    .where(Project.id == bindparam("project"))
    .values(tokens_spent=Project.tokens_spent + bindparam("tokens"))
)
_SPEND_LEASED = _SPEND.values(tokens_leased=Project.tokens_leased - bindparam("tokens"))


def lock_token_books(*, session: Session, project_ids: Iterable[str]) -> None:
    """Lock project rows in id order (PostgreSQL; SQLite has one writer anyway). Every transaction that
    changes token books takes these locks first, then lease rows: with one lock order PostgreSQL cannot
    deadlock two of them.

    FOR NO KEY UPDATE, the lock an UPDATE of tokens_spent takes anyway: unlike FOR UPDATE it does not
    conflict with the KEY SHARE locks that inserting rows with a foreign key to projects (quota leases)
    takes, so two transactions that inserted such rows of one project cannot deadlock upgrading their locks.
    """
    ids = sorted(project_ids)
    if ids:
        # The list padded to a power of two with its last id: a statement of one of a few shapes, not
        # one per count of projects (SQLite keeps each distinct statement compiled; issue 11).
        ids += ids[-1:] * ((1 << (len(ids) - 1).bit_length()) - len(ids))
        session.execute(
            select(Project.id).where(Project.id.in_(ids)).order_by(Project.id).with_for_update(key_share=True)
        )


def token_books(*, session: Session, project_id: str) -> tuple[int | None, int, int]:
    """(token_quota, tokens_spent, tokens_leased) of a project, its row locked as lock_token_books locks it."""
    row = session.execute(
        select(Project.token_quota, Project.tokens_spent, Project.tokens_leased)
        .where(Project.id == project_id)
        .with_for_update(key_share=True)
    ).one()
    return row.token_quota, row.tokens_spent, row.tokens_leased


def lease_tokens(*, session: Session, project_id: str, tokens: int) -> bool:
    """Move ``tokens`` of the allowance to tokens_leased if spent + leased stays within the quota;
    False (nothing written) if it would not."""
    result = session.execute(
        update(Project)
        .where(
            Project.id == project_id,
            Project.tokens_spent + Project.tokens_leased + tokens <= Project.token_quota,
        )
        .values(tokens_leased=Project.tokens_leased + tokens)
    )
    return bool(cast(CursorResult, result).rowcount)


def return_leased_tokens(*, session: Session, project_id: str, tokens: int) -> None:
    """Leased tokens given back (an idle slice) or reclaimed (an expired lease): no longer leased."""
    session.execute(
        update(Project).where(Project.id == project_id).values(tokens_leased=Project.tokens_leased - tokens)
    )


def spend_tokens(*, session: Session, project_id: str, tokens: int, leased: bool) -> None:
    """Add flushed use to tokens_spent; ``leased``: it was drawn from this project's tokens_leased."""
    session.connection().execute(_SPEND_LEASED if leased else _SPEND, {"project": project_id, "tokens": tokens})
