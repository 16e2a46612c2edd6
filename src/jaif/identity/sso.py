"""Single sign-on, the service side: from the verified claims of an OpenID Connect provider to a user.

The provider's (issuer, subject) pair names an SsoIdentity row. On a first sign-in the identity is
linked to the user who is signed in already, else to the local account with the same e-mail address
when the provider vouches for that address, else a new account is created, again only for an address
the provider vouches for (``email_verified`` true; ``trust_email`` only where the claim is absent, never
against an explicit false). Linking an account whose own address was never verified also removes its
password: whoever set it had not proved the mailbox, the provider's user has (the real owner can reset
it by e-mail). Linking ends every earlier session and personal access token of the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.access.models import User
from jaif.config import OidcProviderSettings
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest
from jaif.identity.models import SsoIdentity
from jaif.identity.service import email_problem, end_credentials, find_user, normalise_email


@dataclass(frozen=True, slots=True)
class SsoResult:
    user: User
    created: bool  # a new account
    linked: bool  # the provider's identity was linked now (first sign-in with it)


def _verified(claims: dict, provider: OidcProviderSettings) -> bool:
    """Whether the provider vouches for the address: ``email_verified`` true; when the claim is absent,
    the provider's ``trust_email`` setting decides. An explicit false is never overridden."""
    flag = claims.get("email_verified")
    if flag is None:
        return provider.trust_email
    if isinstance(flag, str):
        flag = flag.strip().lower() == "true"
    return flag is True


def _name(claims: dict, email: str) -> str:
    name = claims.get("name") or " ".join(p for p in (claims.get("given_name"), claims.get("family_name")) if p)
    return (str(name).strip() or email.split("@")[0])[:200]


def sign_in(
    *, session: Session, provider: OidcProviderSettings, claims: dict, current_user_id: str | None = None
) -> SsoResult:
    """The user these claims sign in (see the module docstring); raises a JaifError a person can act on."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise InvalidRequest(f"{provider.display_name} sent no subject identifier.")
    found = session.scalar(
        select(SsoIdentity).where(SsoIdentity.issuer == provider.issuer, SsoIdentity.subject == subject)
    )
    if found is not None:
        user = session.get(User, found.user_id)
        assert user is not None
        if current_user_id and current_user_id != user.id:
            raise Conflict(f"This {provider.display_name} account is linked to another account here already.")
        _check_active(user)
        return SsoResult(user=user, created=False, linked=False)

    if current_user_id:
        user = session.get(User, current_user_id)
        if user is None:
            raise InvalidRequest("Your session has ended; sign in again.")
        _check_active(user)
        return _link(session=session, provider=provider, subject=subject, user=user, created=False)

    email = normalise_email(str(claims.get("email") or ""))
    if email_problem(email):
        raise InvalidRequest(
            f"{provider.display_name} did not share your e-mail address, which an account here needs. "
            f"Allow {provider.display_name} to share it, and try again."
        )
    verified = _verified(claims, provider)
    user = find_user(session=session, email=email)
    if user is not None:
        if not verified:
            raise Forbidden(
                f"An account with the address {email} exists here, and {provider.display_name} has not confirmed "
                f"that the address is yours. Sign in with your password, then link {provider.display_name} "
                "on your account page."
            )
        _check_active(user)
        if user.email_verified_at is None:
            user.password_hash = None
            user.email_verified_at = utcnow()
        return _link(session=session, provider=provider, subject=subject, user=user, created=False)

    if not verified:
        raise Forbidden(
            f"{provider.display_name} has not confirmed that {email} is your address, and an account here is "
            f"made only for a confirmed one. Confirm the address at {provider.display_name} and try again, or sign "
            f"up here with it and link {provider.display_name} on your account page."
        )
    user = User(email=email, name=_name(claims, email), password_hash=None, email_verified_at=utcnow())
    session.add(user)
    session.flush()
    return _link(session=session, provider=provider, subject=subject, user=user, created=True)


def _link(*, session: Session, provider: OidcProviderSettings, subject: str, user: User, created: bool) -> SsoResult:
    if not created:
        # Whoever held the account before (a sign-up with someone else's address) keeps no session or token;
        # the caller signs the provider's user in with a new session.
        end_credentials(session=session, user_id=user.id)
    session.add(SsoIdentity(user_id=user.id, issuer=provider.issuer, subject=subject))
    session.flush()
    return SsoResult(user=user, created=created, linked=True)


def _check_active(user: User) -> None:
    if not user.is_active:
        raise Forbidden("This account is disabled. Ask the operators of the AI Factory.", code="account_disabled")


def identities_of(*, session: Session, user_id: str) -> list[SsoIdentity]:
    return list(session.scalars(select(SsoIdentity).where(SsoIdentity.user_id == user_id)))
