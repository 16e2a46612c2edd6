from collections.abc import AsyncIterator

import pytest

from jaif.access.secrets import hash_password
from tests.support.portal import Browser
from tests.support.services import api, engine, factory, mailer, migrated_url, session, world  # noqa: F401

PASSWORD = "correct horse battery"


@pytest.fixture
def outbox(tmp_path):
    """The app's outbox folder (app_settings' data_dir/outbox): the mail itself, with its working links."""
    return tmp_path / "var" / "outbox"


@pytest.fixture
async def browsers(api) -> AsyncIterator:  # noqa: F811
    """browsers() opens a fresh browser (its own cookies) on the app; all are closed after the test."""
    opened: list[Browser] = []

    def open_browser() -> Browser:
        opened.append(Browser(api.app))
        return opened[-1]

    yield open_browser
    for b in opened:
        await b.aclose()


@pytest.fixture
def with_password(session):  # noqa: F811
    """with_password(actor) gives the world's account a known password (PASSWORD) to sign in with."""
    from jaif.access.models import User

    def give(actor, password: str = PASSWORD):
        session.get(User, actor.user_id).password_hash = hash_password(password)
        session.flush()
        return actor

    return give
