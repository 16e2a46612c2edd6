"""The chat against a real app with its lifespan (the Runtime: registry, gateway, meter) on a fresh
database (SQLite; PostgreSQL where configured), the stand-in upstream as the model, and members signed in
through the real /login form (tests/support/portal.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import jaif.db.models  # noqa: F401  (every table)
from jaif.access import service as access
from jaif.access.models import ProjectMember, User
from jaif.access.secrets import hash_password
from jaif.app import create_app
from jaif.config import Settings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.inference import service as inference
from jaif.metering.models import UsageRecord
from tests.support.portal import Browser
from tests.support.procs import base_env, upstream

PASSWORD = "chat tests password 2026"
MODEL = "fake-chat"
SLOW_MODEL = "slow-chat"  # 200 tokens, 20 ms apart: a page can leave while it streams


@dataclass
class ChatSite:
    app: object
    sessions: sessionmaker[Session]
    browsers: list[Browser]

    def project(self, *, tokens: int | None = 100_000, allowed: list[str] | None = None) -> str:
        name = f"lab-{uuid.uuid4().hex[:8]}"
        with transaction(self.sessions) as session:
            access.create_organisation(session=session, name=f"Org {name}", sector="academia", country="DE")
            return access.create_project(session=session, name=name, organisation=f"Org {name}", token_quota=tokens,
                                         allowed_models=allowed).id

    def member(self, *project_ids: str) -> str:
        email = f"m-{uuid.uuid4().hex[:8]}@example.org"
        with transaction(self.sessions) as session:
            user, _ = access.create_user(session=session, email=email)
            user.password_hash = hash_password(PASSWORD)
            user.email_verified_at = utcnow()
            session.flush()
            for project_id in project_ids:
                session.add(ProjectMember(project_id=project_id, user_id=user.id, role="member"))
        return email

    async def browser(self, email: str) -> Browser:
        browser = Browser(self.app)
        self.browsers.append(browser)
        await browser.sign_in(email, PASSWORD)
        return browser

    def usage(self, request_id: str) -> UsageRecord | None:
        with self.sessions() as session:
            return session.get(UsageRecord, request_id)

    def user_id(self, email: str) -> str:
        with self.sessions() as session:
            return session.scalar(select(User.id).where(User.email == email))


async def start_chat(browser: Browser, project_id: str, **settings: str) -> str:
    """A new conversation in ``project_id`` through the /chat form; returns its id."""
    made = await browser.submit("/chat", {"project": project_id, "model": MODEL, **settings})  # model= overrides
    assert made.status_code == 303, made.text[:1000]
    return made.headers["location"].rsplit("/", 1)[1]


async def send(browser: Browser, conversation_id: str, content: str, *, csrf: bool = True) -> tuple[int, list[dict]]:
    """A message as the page's script sends it; returns the status and the NDJSON events (or the refusal)."""
    page = await browser.get(f"/chat/{conversation_id}")
    token = page.text.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = await browser.client.post(
        f"/chat/{conversation_id}/messages", content=orjson.dumps({"content": content}),
        headers={"content-type": "application/json", **({"x-csrf-token": token} if csrf else {})},
    )
    if response.headers.get("content-type", "").startswith("application/x-ndjson"):
        return response.status_code, [orjson.loads(line) for line in response.text.splitlines() if line.strip()]
    return response.status_code, [response.json()] if "json" in response.headers.get("content-type", "") else []


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[tuple[str, str]]:
    """The two stand-in upstreams (MODEL's and SLOW_MODEL's), shared by a module's tests: they keep no state."""
    with upstream(base_env(), "--tokens", "8") as (url, _proc), \
            upstream(base_env(), "--tokens", "200", "--chunk-delay-ms", "20") as (slow_url, _slow):
        yield url, slow_url


@pytest.fixture
async def chat(database_url: str, tmp_path: Path, test_databases, stand_ins) -> AsyncIterator[ChatSite]:
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    url, slow_url = stand_ins
    with transaction(sessions) as session:
        inference.add_model(session=session, name=MODEL, upstreams=[url])
        inference.add_model(session=session, name=SLOW_MODEL, upstreams=[slow_url])
    settings = Settings(database_url=database_url, data_dir=tmp_path / "var", redis_url=None,
                        inference={"builtin_models": False}, metering={"flush_interval_s": 0.05})
    app = create_app(settings)
    site = ChatSite(app, sessions, [])
    try:
        async with app.router.lifespan_context(app):
            try:
                yield site
            finally:
                for browser in site.browsers:
                    await browser.aclose()
    finally:
        engine.dispose()
