"""Single sign-on against a real OpenID Connect provider: oidc-provider (Node) on loopback, jaif as a
real `jaif serve`, and httpx as the browser, filling in the provider's own login and consent forms.

The authorization-code flow runs end to end: jaif redirects with state, nonce and PKCE; the provider
signs the user in and asks for consent; jaif exchanges the code, checks the ID token against the
provider's keys, reads the e-mail address from the userinfo endpoint, and signs the user in.
"""

from __future__ import annotations

import json
import re
import uuid
from html import unescape
from urllib.parse import urljoin

import httpx
import pytest

from jaif.access import service as access
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.errors import NotFound
from jaif.identity.models import SsoIdentity
from tests.e2e.identity.conftest import oidc_provider
from tests.support.databases import one_database
from tests.support.procs import JAIF, free_port, jaif, last_line, started

pytestmark = [pytest.mark.slow, one_database()]
PROVIDER = "testaai"


@pytest.fixture(scope="module")
def sso_site(module_env, oidc_provider_script):
    """jaif serving on a free port with the provider configured; yields (base URL, env, provider)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with oidc_provider(oidc_provider_script, redirect_uri=f"{base}/login/sso/{PROVIDER}/callback") as provider:
        config = [{"name": PROVIDER, "display_name": "Test AAI", "issuer": provider.issuer,
                   "client_id": provider.client_id, "client_secret": provider.client_secret}]
        env = {**module_env, "JAIF_IDENTITY__OIDC_PROVIDERS": json.dumps(config)}
        with started([JAIF, "serve", "--port", str(port)], env, f"{base}/healthz", timeout=120):
            yield base, env, provider


def form_of(html: str, base_url: str) -> tuple[str, dict[str, str]]:
    """The action and the hidden inputs of the first form on a page."""
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html[:1000]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return urljoin(base_url, unescape(action.group(1))), hidden


def new_browser() -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=30)


def sign_in_at_provider(
    browser: httpx.Client, base: str, login: str, *, next_path: str = "/account"
) -> httpx.Response:
    """Start at jaif's sign-in button and fill in the provider's forms; returns jaif's last answer."""
    page = browser.get(f"{base}/login?next={next_path}")
    assert "Sign in with Test AAI" in page.text
    # The button: to jaif, which redirects to the provider, which shows its login form.
    login_page = browser.get(f"{base}/login/sso/{PROVIDER}?next={next_path}")
    assert login_page.status_code == 200 and 'name="login"' in login_page.text, login_page.text[:500]
    assert "code_challenge=" in str(login_page.history[1].url) and "nonce=" in str(login_page.history[1].url)
    action, fields = form_of(login_page.text, str(login_page.url))
    consent = browser.post(action, data={**fields, "login": login, "password": "any"})
    assert consent.status_code == 200 and 'name="prompt" value="consent"' in consent.text, consent.text[:500]
    action, fields = form_of(consent.text, str(consent.url))
    return browser.post(action, data=fields)


def user_of(env: dict[str, str], email: str):
    engine = make_engine(env["JAIF_DATABASE_URL"])
    try:
        with transaction(make_session_factory(engine)) as session:
            user = access.get_user(session=session, email=email)
            issuers = [i.issuer for i in session.query(SsoIdentity).filter(SsoIdentity.user_id == user.id)]
            return user, issuers
    finally:
        engine.dispose()


def test_first_sign_in_creates_the_user_and_signs_them_in(sso_site):
    base, env, provider = sso_site
    email = f"ada-{uuid.uuid4().hex[:6]}@example.org"
    with new_browser() as browser:
        answer = sign_in_at_provider(browser, base, email)
        assert answer.status_code == 200, answer.text[:1000]
        assert str(answer.url) == f"{base}/account"
        assert "Your account was created with Test AAI" in answer.text
        me = browser.get(f"{base}/api/v1/me").json()
        assert me["email"] == email and me["email_verified"] is True and me["name"] == email.split("@")[0]
        assert me["sso_providers"] == [provider.issuer]
    user, issuers = user_of(env, email)
    assert user.password_hash is None and issuers == [provider.issuer]

    # Signing in again finds the same account.
    with new_browser() as again:
        answer = sign_in_at_provider(again, base, email, next_path="/api/v1/me")
        assert answer.json()["id"] == user.id


def test_an_existing_account_is_linked_by_its_verified_address(sso_site):
    base, env, provider = sso_site
    email = f"grace-{uuid.uuid4().hex[:6]}@example.org"
    jaif(env, "user", "create", email)
    before, _ = user_of(env, email)
    with new_browser() as browser:
        answer = sign_in_at_provider(browser, base, email, next_path="/api/v1/me")
        assert answer.status_code == 200 and answer.json()["id"] == before.id
    assert user_of(env, email)[1] == [provider.issuer]


def test_an_unconfirmed_address_does_not_take_over_an_account(sso_site):
    base, env, _provider = sso_site
    email = f"linus-{uuid.uuid4().hex[:6]}@example.org"
    password = last_line(jaif(env, "user", "create", email))
    with new_browser() as browser:
        answer = sign_in_at_provider(browser, base, f"unverified:{email}")
        assert answer.status_code == 403 and "has not confirmed that the address is yours" in answer.text
        assert browser.get(f"{base}/api/v1/me").status_code == 401
    assert user_of(env, email)[1] == [] and password


def test_no_address_no_account(sso_site):
    base, _env, _provider = sso_site
    with new_browser() as browser:
        answer = sign_in_at_provider(browser, base, f"noemail:{uuid.uuid4().hex[:6]}")
        assert answer.status_code == 400 and "did not share your e-mail address" in answer.text


def test_a_forged_callback_is_refused(sso_site):
    base, _env, _provider = sso_site
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"{base}/login/sso/{PROVIDER}/callback?code=forged&state=forged")
        assert answer.status_code == 400 and "did not work" in answer.text
        assert client.get(f"{base}/login/sso/nope").status_code == 404


def test_an_account_pre_made_with_the_victims_address_is_taken_back_by_single_sign_on(sso_site):
    """Issue 9, item 4: an attacker signs up with the victim's address (never confirmed). They get no
    token meanwhile; the victim's single sign-on links the account, and the attacker's session and
    password stop working."""
    base, env, provider = sso_site
    email = f"victim-{uuid.uuid4().hex[:6]}@example.org"
    attacker_password = "attacker passphrase 2026"
    with new_browser() as attacker:
        form = attacker.get(f"{base}/signup")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        signed_up = attacker.post(f"{base}/signup", data={"email": email, "name": "Not the victim",
                                                           "password": attacker_password, "csrf_token": token})
        assert signed_up.status_code == 200 and attacker.get(f"{base}/api/v1/me").status_code == 200
        fresh = re.search(r'name="csrf_token" value="([^"]+)"', attacker.get(f"{base}/").text).group(1)
        refused = attacker.post(f"{base}/api/v1/me/tokens", json={"name": "keep"}, headers={"X-CSRF-Token": fresh})
        assert refused.status_code == 403 and "Confirm your e-mail address" in refused.text

        with new_browser() as victim:
            answer = sign_in_at_provider(victim, base, email, next_path="/api/v1/me")
            assert answer.status_code == 200 and answer.json()["email"] == email
        assert attacker.get(f"{base}/api/v1/me").status_code == 401  # the attacker's session ended
    user, issuers = user_of(env, email)
    assert issuers == [provider.issuer] and user.password_hash is None


def test_an_unconfirmed_address_from_the_provider_makes_no_account(sso_site):
    base, env, _provider = sso_site
    email = f"nobody-{uuid.uuid4().hex[:6]}@example.org"
    with new_browser() as browser:
        answer = sign_in_at_provider(browser, base, f"unverified:{email}")
        assert answer.status_code == 403 and "has not confirmed" in answer.text
        assert browser.get(f"{base}/api/v1/me").status_code == 401
    with pytest.raises(NotFound):
        user_of(env, email)
