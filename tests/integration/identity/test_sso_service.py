"""Single sign-on, the service side: which account a provider's claims sign in to (real database; the
real provider flow is in tests/e2e/identity/test_oidc.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from jaif.access.models import User
from jaif.access.secrets import hash_password
from jaif.config import OidcProviderSettings
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest
from jaif.identity import sso
from jaif.identity.models import TokenPurpose
from jaif.identity.service import consume_one_time, find_one_time, issue_one_time

PROVIDER = OidcProviderSettings(
    name="aai", display_name="Helmholtz AAI", issuer="https://aai.example", client_id="c", client_secret=SecretStr("s")
)


def claims(email: str | None, *, verified: bool | str | None = True, sub: str | None = None) -> dict:
    """``verified=None``: the provider sends no email_verified claim at all."""
    found = {"sub": sub or uuid.uuid4().hex, "name": "Ada Lovelace"}
    if verified is not None:
        found["email_verified"] = verified
    if email:
        found["email"] = email
    return found


def local(session, email: str, *, verified: bool) -> User:
    user = User(
        email=email,
        name="Local",
        password_hash=hash_password("local password 1"),
        email_verified_at=utcnow() if verified else None,
    )
    session.add(user)
    session.flush()
    return user


def address() -> str:
    return f"ada-{uuid.uuid4().hex[:8]}@example.org"


def test_first_sign_in_creates_an_account_and_the_next_finds_it(session):
    email = address()
    first = sso.sign_in(session=session, provider=PROVIDER, claims=claims(email, sub="s1" + email))
    assert first.created and first.linked
    assert first.user.email == email and first.user.name == "Ada Lovelace"
    assert first.user.password_hash is None and first.user.email_verified_at is not None
    again = sso.sign_in(session=session, provider=PROVIDER, claims=claims("changed@example.org", sub="s1" + email))
    assert again.user.id == first.user.id and not again.created and not again.linked


def test_a_verified_address_links_the_existing_account(session):
    user = local(session, address(), verified=True)
    result = sso.sign_in(session=session, provider=PROVIDER, claims=claims(user.email.upper()))
    assert result.user.id == user.id and result.linked and not result.created
    assert user.password_hash is not None  # its owner proved the address before: the password stays


def test_linking_an_unverified_account_removes_the_password_someone_else_may_have_set(session):
    user = local(session, address(), verified=False)
    result = sso.sign_in(session=session, provider=PROVIDER, claims=claims(user.email))
    assert result.user.id == user.id
    assert user.password_hash is None and user.email_verified_at is not None


def test_an_unverified_address_does_not_link(session):
    user = local(session, address(), verified=True)
    with pytest.raises(Forbidden, match="has not confirmed"):
        sso.sign_in(session=session, provider=PROVIDER, claims=claims(user.email, verified=False))
    trusting = PROVIDER.model_copy(update={"trust_email": True})
    # trust_email stands in for a missing claim only: an explicit false is never overridden.
    for flag in (False, "false"):
        with pytest.raises(Forbidden, match="has not confirmed"):
            sso.sign_in(session=session, provider=trusting, claims=claims(user.email, verified=flag))
    assert sso.sign_in(session=session, provider=trusting, claims=claims(user.email, verified=None)).user.id == user.id


def test_an_unverified_address_makes_no_account(session):
    email = address()
    trusting = PROVIDER.model_copy(update={"trust_email": True})
    for provider, flag in ((PROVIDER, False), (PROVIDER, None), (trusting, False), (trusting, "False")):
        with pytest.raises(Forbidden, match="has not confirmed"):
            sso.sign_in(session=session, provider=provider, claims=claims(email, verified=flag))
    assert session.scalar(select(User).where(User.email == email)) is None
    made = sso.sign_in(session=session, provider=trusting, claims=claims(email, verified=None))
    assert made.created and made.user.email_verified_at is not None


def test_without_an_address_there_is_no_account(session):
    with pytest.raises(InvalidRequest, match="did not share your e-mail"):
        sso.sign_in(session=session, provider=PROVIDER, claims=claims(None))
    with pytest.raises(InvalidRequest, match="subject"):
        sso.sign_in(session=session, provider=PROVIDER, claims={"email": address()})


def test_a_signed_in_user_links_the_provider_and_cannot_take_anothers(session):
    mine = local(session, address(), verified=True)
    theirs = local(session, address(), verified=True)
    their_claims = claims(theirs.email)
    sso.sign_in(session=session, provider=PROVIDER, claims=their_claims)
    linked = sso.sign_in(
        session=session, provider=PROVIDER, claims=claims("other@example.org"), current_user_id=mine.id
    )
    assert linked.user.id == mine.id and linked.linked
    with pytest.raises(Conflict):
        sso.sign_in(session=session, provider=PROVIDER, claims=their_claims, current_user_id=mine.id)


def test_a_disabled_account_is_refused(session):
    user = local(session, address(), verified=True)
    user.is_active = False
    with pytest.raises(Forbidden, match="disabled"):
        sso.sign_in(session=session, provider=PROVIDER, claims=claims(user.email))


def test_a_one_time_token_is_consumed_once_even_when_found_twice(session):
    row, secret = issue_one_time(
        session=session, purpose=TokenPurpose.invite, email="x@example.org", lifetime=timedelta(hours=1)
    )
    first = find_one_time(session=session, purpose=TokenPurpose.invite, secret=secret)
    second = find_one_time(session=session, purpose=TokenPurpose.invite, secret=secret)
    consume_one_time(session=session, row=first)
    with pytest.raises(InvalidRequest, match="used already"):
        consume_one_time(session=session, row=second)
    with pytest.raises(InvalidRequest, match="not valid"):
        find_one_time(session=session, purpose=TokenPurpose.reset_password, secret=secret)  # wrong purpose
    assert row.used_at is not None
