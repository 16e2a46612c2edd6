"""Who belongs to an organisation: a membership is pending until someone vouches for it.

A user names their organisation themselves (``users.organisation_id``: applying under it, or on
sign-up). That says nothing about whether they work there, so the membership starts *pending*. It is
*confirmed*:

- by an existing confirmed member of the organisation (with a verified e-mail address), or an operator
  (``confirm``); or
- by itself, when the user's e-mail address is verified and its domain is one the organisation
  registered (``add_domain``, operators only; one organisation per domain).

Changing organisation starts pending again. Automatic grants (applications/service.py) need a verified
address and a confirmed membership of the application's organisation; nothing else here grants anything.

Who sees what: operators see every organisation's members and domains; a confirmed member sees those of
their own organisation; anyone else gets NotFound, so a pending member cannot list colleagues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.models import MembershipVia, Organisation, OrganisationDomain, User
from jaif.access.schemas import Actor
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound

PENDING = "pending"
CONFIRMED = "confirmed"
_ID = re.compile(r"^[0-9a-f]{32}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Member:
    """A user who named the organisation as theirs, as a confirmer sees them (no internal id)."""

    email: str
    name: str
    state: str  # pending | confirmed
    confirmed_via: str | None
    confirmed_at: datetime | None


def normalise_domain(domain: str) -> str:
    """``Uni.Example.`` -> ``uni.example``; InvalidRequest unless it is a plain DNS name of 2+ labels."""
    name = (domain or "").strip().lower().removeprefix("@").rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidRequest("give a domain such as uni.example (letters, digits, '-' and dots)", param="domain")
    return name


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def _domain_holder(session: Session, email: str) -> str | None:
    """The id of the organisation that registered ``email``'s domain, if one did."""
    query = select(OrganisationDomain.organisation_id).where(OrganisationDomain.domain == email_domain(email))
    return session.scalar(query)


def state(user: User) -> str | None:
    """None without an organisation, else pending or confirmed (as recorded)."""
    if user.organisation_id is None:
        return None
    return CONFIRMED if user.organisation_confirmed_at is not None else PENDING


def confirm_by_domain(session: Session, user: User) -> bool:
    """Record the confirmation a verified address in a registered domain gives; whether it is confirmed."""
    if user.organisation_id is None:
        return False
    if user.organisation_confirmed_at is not None:
        return True
    if user.email_verified_at is None or _domain_holder(session, user.email) != user.organisation_id:
        return False
    user.organisation_confirmed_at = utcnow()
    user.organisation_confirmed_via = MembershipVia.domain
    session.flush()
    return True


def is_confirmed_member(session: Session, *, user: User, organisation_id: str | None) -> bool:
    """Whether ``user`` is a confirmed member of ``organisation_id`` (recording a domain's confirmation)."""
    return organisation_id is not None and user.organisation_id == organisation_id and confirm_by_domain(session, user)


def join(session: Session, *, user: User, organisation_id: str) -> None:
    """``user`` names ``organisation_id`` as theirs: pending, unless their verified domain confirms it."""
    if user.organisation_id == organisation_id:
        return
    user.organisation_id = organisation_id
    user.organisation_confirmed_at = None
    user.organisation_confirmed_via = None
    session.flush()
    confirm_by_domain(session, user)


def _organisation(session: Session, organisation_id: str) -> Organisation:
    org = session.get(Organisation, organisation_id) if _ID.match(organisation_id or "") else None
    if org is None:
        raise NotFound(f"no organisation {organisation_id!r}", param="id")
    return org


def _confirmer(session: Session, actor: Actor, organisation_id: str) -> Organisation:
    """The organisation, if ``actor`` may confirm its members and see them: operators, confirmed members."""
    org = _organisation(session, organisation_id)
    if actor.is_operator:
        return org
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None or user.email_verified_at is None or not is_confirmed_member(session, user=user,
                                                                                  organisation_id=org.id):
        raise NotFound(f"no organisation {organisation_id!r}", param="id")
    return org


def members(*, session: Session, actor: Actor, organisation_id: str) -> list[Member]:
    """Everyone who named the organisation as theirs, pending first, then by e-mail."""
    org = _confirmer(session, actor, organisation_id)
    rows = session.scalars(select(User).where(User.organisation_id == org.id)).all()
    for user in rows:
        confirm_by_domain(session, user)
    rows = sorted(rows, key=lambda u: (state(u) != PENDING, u.email.lower()))
    return [Member(email=u.email, name=u.name, state=state(u) or PENDING, confirmed_via=u.organisation_confirmed_via,
                   confirmed_at=u.organisation_confirmed_at) for u in rows]


def confirm(*, session: Session, actor: Actor, organisation_id: str, email: str) -> Member:
    """A confirmed member or an operator confirms that ``email`` belongs to the organisation."""
    org = _confirmer(session, actor, organisation_id)
    user = session.scalar(select(User).where(func.lower(User.email) == (email or "").strip().lower()))
    if user is None or user.organisation_id != org.id:
        raise NotFound(f"{email!r} has not named {org.name} as their organisation", param="email")
    if user.organisation_confirmed_at is None:
        user.organisation_confirmed_at = utcnow()
        user.organisation_confirmed_via = MembershipVia.operator if actor.is_operator else MembershipVia.member
        session.flush()
    return Member(email=user.email, name=user.name, state=CONFIRMED, confirmed_via=user.organisation_confirmed_via,
                  confirmed_at=user.organisation_confirmed_at)


def domains(*, session: Session, actor: Actor, organisation_id: str) -> list[str]:
    org = _confirmer(session, actor, organisation_id)
    return [d.domain for d in org.domains]


def add_domain(*, session: Session, actor: Actor, organisation_id: str, domain: str) -> list[str]:
    """Operators register an e-mail domain of the organisation; returns its domains."""
    if not actor.is_operator:
        raise Forbidden("Only operators may register an organisation's e-mail domains.")
    org = _organisation(session, organisation_id)
    name = normalise_domain(domain)
    holder = session.scalar(select(OrganisationDomain).where(OrganisationDomain.domain == name))
    if holder is not None and holder.organisation_id != org.id:
        raise Conflict(f"{name} is registered for another organisation", param="domain")
    if holder is None:
        org.domains.append(OrganisationDomain(domain=name))
        session.flush()
    return [d.domain for d in org.domains]


def remove_domain(*, session: Session, actor: Actor, organisation_id: str, domain: str) -> list[str]:
    """Operators remove a domain; memberships it confirmed already stay confirmed."""
    if not actor.is_operator:
        raise Forbidden("Only operators may remove an organisation's e-mail domains.")
    org = _organisation(session, organisation_id)
    name = normalise_domain(domain)
    found = next((d for d in org.domains if d.domain == name), None)
    if found is None:
        raise NotFound(f"{name} is not registered for {org.name}", param="domain")
    org.domains.remove(found)
    session.flush()
    return [d.domain for d in org.domains]


def own_state(*, session: Session, actor: Actor) -> str | None:
    """The state of ``actor``'s membership of their own organisation (None without one)."""
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        return None
    confirm_by_domain(session, user)
    return state(user)
