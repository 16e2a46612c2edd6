"""Repeated failed sign-ins are refused for a while (identity/throttle.py): per account and per client
address, kept in the database so that every server process refuses the same guesser, said next to the
e-mail field with what was typed kept."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from jaif.app import create_app
from jaif.config import IdentitySettings
from jaif.db.base import utcnow
from jaif.errors import RateLimited
from jaif.identity import throttle
from jaif.identity.models import SignInThrottle
from tests.integration.identity.conftest import PASSWORD
from tests.support.portal import Browser, mail_links
from tests.support.services import app_settings


def _locked_message(page: str) -> str:
    found = re.search(r'<span class="error" id="f-email-error">([^<]+)</span>', page)
    assert found, page[:2000]
    return found.group(1)


async def test_five_wrong_passwords_lock_the_account_for_a_while(
    browsers, world, with_password, session, factory, migrated_url, tmp_path
):
    ada = with_password(world.user("ada"))
    grace = with_password(world.user("grace"))
    browser = browsers()
    for _ in range(5):
        wrong = await browser.submit("/login", {"email": ada.email, "password": "not the password"})
        assert wrong.status_code == 401
    refused = await browser.submit("/login", {"email": ada.email, "password": PASSWORD})  # even the right one
    assert refused.status_code == 429 and 800 <= int(refused.headers["retry-after"]) <= 900
    message = _locked_message(refused.text)
    assert message.startswith("Too many failed sign-ins for this account. Try again in 15 minutes")
    assert 'aria-invalid="true"' in refused.text and f'value="{ada.email}"' in refused.text
    assert 'role="alert"' in refused.text and 'href="#f-email"' in refused.text
    assert (await browser.get("/api/v1/me")).status_code == 401

    await browsers().sign_in(grace.email, PASSWORD)  # another account, from the same address: not refused

    # Another server process (another app on the same database) refuses too: nothing is kept in memory.
    settings = app_settings(migrated_url, tmp_path)
    other = create_app(settings)
    other.state.runtime = SimpleNamespace(session_factory=factory, settings=settings)
    elsewhere = Browser(other)
    try:
        again = await elsewhere.submit("/login", {"email": ada.email.upper(), "password": PASSWORD})
        assert again.status_code == 429
    finally:
        await elsewhere.aclose()

    session.execute(update(SignInThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    await browsers().sign_in(ada.email, PASSWORD)  # the lockout is over; success clears the count
    assert session.scalar(select(SignInThrottle).where(SignInThrottle.key == throttle._account(ada.email))) is None


async def test_a_password_reset_ends_the_lockout(outbox, browsers, world, with_password, factory):
    ada = with_password(world.user("ada"))
    browser = browsers()
    for _ in range(5):
        await browser.submit("/login", {"email": ada.email, "password": "wrong guess"})
    assert (await browser.submit("/login", {"email": ada.email, "password": PASSWORD})).status_code == 429
    assert (await browser.submit("/forgot-password", {"email": ada.email})).status_code == 200
    [link] = mail_links(outbox, ada.email, "/reset-password")
    new_password = "a brand new passphrase 7"
    done = await browser.submit(
        "/reset-password", {"token": link.split("token=")[1], "password": new_password}, page=link
    )
    assert done.status_code == 303, done.text[:500]
    await browsers().sign_in(ada.email, new_password)


@pytest.fixture
def limits() -> IdentitySettings:
    return IdentitySettings(sign_in_max_failures=3, sign_in_max_failures_per_address=4, sign_in_window_s=60,
                            sign_in_lockout_s=300)


def _fail(session, limits, email, address, now):
    throttle.failed(session=session, settings=limits, email=email, address=address, now=now)


def test_too_many_failures_from_one_address_lock_it_for_every_account(session, limits):
    now = utcnow()
    for n in range(4):
        _fail(session, limits, f"guess{n}-{uuid.uuid4().hex[:6]}@example.org", "203.0.113.9", now)
    with pytest.raises(RateLimited) as refused:
        throttle.check(session=session, settings=limits, email="someone@example.org", address="203.0.113.9", now=now)
    assert "your network address" in refused.value.message and refused.value.status == 429
    assert refused.value.param == "email" and refused.value.code == "too_many_sign_ins"
    throttle.check(session=session, settings=limits, email="someone@example.org", address="198.51.100.1", now=now)
    later = now + timedelta(seconds=301)
    throttle.check(session=session, settings=limits, email="someone@example.org", address="203.0.113.9", now=later)


def test_failures_count_within_the_window_only_and_case_does_not_matter(session, limits):
    now = utcnow()
    email = f"Ada-{uuid.uuid4().hex[:6]}@Example.org"
    _fail(session, limits, email, None, now)
    _fail(session, limits, email.lower(), None, now + timedelta(seconds=30))
    _fail(session, limits, email.upper(), None, now + timedelta(seconds=120))  # the first two ran out
    throttle.check(session=session, settings=limits, email=email, address=None, now=now + timedelta(seconds=120))
    _fail(session, limits, email, None, now + timedelta(seconds=130))
    _fail(session, limits, email, None, now + timedelta(seconds=140))
    with pytest.raises(RateLimited) as refused:
        throttle.check(session=session, settings=limits, email=email.lower(), address=None,
                       now=now + timedelta(seconds=150))
    assert "this account" in refused.value.message and "reset your password" in refused.value.message
    assert 290 <= refused.value.retry_after <= 300


def test_counting_by_address_can_be_switched_off(session):
    limits = IdentitySettings(sign_in_max_failures=2, sign_in_max_failures_per_address=0)
    now = utcnow()
    for n in range(10):
        _fail(session, limits, f"u{n}-{uuid.uuid4().hex[:6]}@example.org", "192.0.2.1", now)
    assert session.scalar(select(SignInThrottle).where(SignInThrottle.key == "address:192.0.2.1")) is None
    throttle.check(session=session, settings=limits, email="fresh@example.org", address="192.0.2.1", now=now)
