"""Fixtures for the factory's services (support desk, catalogue, training): one migrated database per
backend for the test session, each test inside a transaction that is rolled back at its end, people and
projects made in a line each, and the app driven through httpx's ASGI transport with real personal
access tokens.

A test module's conftest imports the fixtures it wants from here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jaif.access.models import Organisation, Project, ProjectMember, User
from jaif.access.schemas import Actor
from jaif.app import create_app
from jaif.config import Settings, SmtpSettings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine
from jaif.db.migrate import upgrade
from jaif.identity import pats
from jaif.notify import service as notify
from jaif.notify.mail import Mailer
from tests.support import databases


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_url(request, tmp_path_factory) -> Iterator[str]:
    """A database migrated once for the whole test session: SQLite, and PostgreSQL where configured."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('services') / 'jaif.db'}"
        upgrade(url)
        yield url
        return
    reason = databases.postgres_reason()
    if reason:
        pytest.skip(reason)
    url = databases.create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        databases.drop_postgres_database(url)


@pytest.fixture(scope="session")
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions that share one connection whose outer transaction is rolled back after the test: each
    session's own transaction (the app's, per request) is a savepoint inside it."""
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@pytest.fixture
def mailer(tmp_path: Path) -> Mailer:
    return Mailer(smtp=SmtpSettings(), outbox=tmp_path / "outbox", base_url="http://portal.test")


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


@dataclass
class World:
    """People and projects, made directly (no argon2 work: these accounts never sign in by password)."""

    session: Session

    def user(self, name: str = "user", *, role: str = "user", verified: bool = True) -> Actor:
        """An account; its address confirmed unless ``verified=False`` (unconfirmed ones hold no token or key)."""
        user = User(email=f"{name}-{uuid.uuid4().hex[:8]}@example.org", name=name.title(), role=role,
                    email_verified_at=utcnow() if verified else None)
        self.session.add(user)
        self.session.flush()
        return actor_of(user)

    def operator(self, name: str = "operator") -> Actor:
        return self.user(name, role="operator")

    def project(self, *members: Actor, pi: Actor | None = None) -> Project:
        name = f"p-{uuid.uuid4().hex[:8]}"
        org = Organisation(name=f"Org {name}", sector="academia", country="DE")
        project = Project(name=name, organisation=org)
        self.session.add_all([org, project])
        self.session.flush()
        if pi is not None:
            self.session.add(ProjectMember(project_id=project.id, user_id=pi.user_id, role="pi"))
        for member in members:
            self.session.add(ProjectMember(project_id=project.id, user_id=member.user_id, role="member"))
        self.session.flush()
        return project

    def mail_to(self, actor: Actor) -> list[str]:
        """Subjects of the e-mails sent to ``actor``, oldest first."""
        notes = notify.list_notifications(session=self.session, to=actor.email)
        return [n.subject for n in reversed(notes)]


@pytest.fixture
def world(session: Session) -> World:
    return World(session)


class Api:
    """The app over httpx's ASGI transport; ``as_(actor)`` gives a client carrying a real personal
    access token of that actor."""

    def __init__(self, app, factory: sessionmaker[Session]) -> None:
        self.app = app
        self.factory = factory
        self.anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal.test")
        self._clients: list[httpx.AsyncClient] = [self.anonymous]

    def as_(self, actor: Actor) -> httpx.AsyncClient:
        with self.factory() as session, session.begin():
            _row, secret = pats.create(session=session, user_id=actor.user_id, name="test")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://portal.test",
            headers={"authorization": f"Bearer {secret}"},
        )
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def app_settings(migrated_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=migrated_url, data_dir=tmp_path / "var", inference={"builtin_models": False})


@pytest.fixture
async def api(
    factory: sessionmaker[Session], session: Session, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    """The app without its lifespan (no gateway, no background loops): its requests use ``factory``."""
    session.commit()  # what the test made so far becomes visible to the app's sessions
    settings = app_settings(migrated_url, tmp_path)
    app = create_app(settings)
    # No gateway: the public home page lists no models (an empty registry).
    app.state.runtime = SimpleNamespace(session_factory=factory, settings=settings,
                                        registry=SimpleNamespace(models={}, aliases={}))
    client = Api(app, factory)
    try:
        yield client
    finally:
        await client.aclose()


PAGE_PASSWORD = "services page tests 2025"


class Portal:
    """Browsers on the app's portal, each signed in through the real /login form."""

    def __init__(self, api: Api, session: Session) -> None:
        self.api = api
        self.session = session
        self._browsers: list = []

    async def as_(self, actor: Actor):
        from jaif.access.secrets import hash_password
        from tests.support.portal import Browser

        self.session.get(User, actor.user_id).password_hash = hash_password(PAGE_PASSWORD)
        self.session.commit()
        browser = Browser(self.api.app)
        self._browsers.append(browser)
        await browser.sign_in(actor.email, PAGE_PASSWORD)
        return browser

    async def aclose(self) -> None:
        for browser in self._browsers:
            await browser.aclose()


@pytest.fixture
async def portal(api: Api, session: Session) -> AsyncIterator[Portal]:
    portal = Portal(api, session)
    try:
        yield portal
    finally:
        await portal.aclose()


class Cli:
    """`jaif …` run in-process (Typer's CliRunner) with the environment of a jaif subprocess: much
    faster than a subprocess per command. Errors come back as exit code 1 and a message on stderr,
    as `main()` prints them."""

    def __init__(self, env: dict[str, str]) -> None:
        from typer.testing import CliRunner

        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, check: bool = True):
        import jaif.cli  # noqa: F401  (registers every command group)
        from jaif.cli.common import app
        from jaif.errors import JaifError

        result = self.runner.invoke(app, list(args), env=self.env)
        if isinstance(result.exception, JaifError):
            return SimpleNamespace(returncode=1, stdout=result.stdout, stderr=result.exception.message)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert not check or result.exit_code == 0, (args, result.exit_code, result.output)
        return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)
