"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python)
against a real `jaif serve` on a real database, with the stand-in upstream as the model.

Playwright's own browser downloads are never used: ``executable_path`` points at the system Chromium,
which `make test` installs when it runs as root. Without it, or without the playwright package, these
tests skip and say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from jaif.db.engine import make_engine
from tests.support.portal import mail_links
from tests.support.procs import jaif, last_line, server, upstream

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
TIMEOUT_MS = 20_000


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (`make test` does, as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Site:
    """A running jaif: its URL, environment, the first operator's credentials, and its outbox."""

    def __init__(self, base: str, env: dict[str, str], operator: tuple[str, str]) -> None:
        self.base = base
        self.env = env
        self.operator = operator
        self._engine = make_engine(env["JAIF_DATABASE_URL"])
        self.sessions = sessionmaker(self._engine, expire_on_commit=False)

    def user(self, email: str, role: str = "user") -> str:
        """A user made with the CLI; returns the one-time password."""
        return last_line(jaif(self.env, "user", "create", email, "--role", role))

    def token(self, email: str) -> str:
        return last_line(jaif(self.env, "token", "create", "--user", email))

    def mail_link(self, to: str, path: str) -> str:
        links = mail_links(Path(self.env["JAIF_DATA_DIR"]) / "outbox", to, path)
        assert links, f"no e-mail to {to} with a link to {path}"
        return self.base + links[0]

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture(scope="module")
def site(chromium, module_env: dict[str, str]) -> Iterator[Site]:
    """`jaif init` (the seeded calls), an operator, a model on the stand-in upstream, `jaif serve`."""
    jaif(module_env, "init")
    # An operator of the test's own: the first operator's one-time password goes to `jaif init`'s terminal.
    email = "operator@factory.example.org"
    password = last_line(jaif(module_env, "user", "create", email, "--role", "operator"))
    # Its stream's events 30 ms apart, as a model's come: on a loaded machine, events sent at once can
    # reach the browser in one read, and the chat page would never be seen streaming (test_chat.py).
    with upstream(module_env, "--chunk-delay-ms", "30") as (url, _proc):
        jaif(module_env, "model", "add", "fake-chat", "--upstream", url, "--alias", "default-chat")
        with server(module_env) as base:
            found = Site(base, module_env, (email, password))
            try:
                yield found
            finally:
                found.close()


@pytest.fixture
def context(chromium) -> Iterator:
    """A fresh browser profile (no cookies) per test; close it at the end."""
    ctx = chromium.new_context(viewport={"width": 1100, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def sign_in(page, site: Site, email: str, password: str) -> None:
    page.goto(site.base + "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.base + "/")
