"""Fixtures of the front door's tests (calls, applications, allocations): one migrated database per
backend for the whole run, each test in a transaction that is rolled back; and a small world builder.

Import the fixtures into a conftest.py: ``from tests.support.frontdoor import migrated_url, session, world``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import Organisation, User
from jaif.access.schemas import Actor
from jaif.calls.models import AccessCall
from jaif.calls.seed import seed_calls
from jaif.config import SmtpSettings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine
from jaif.notify.mail import Mailer
from jaif.notify.models import Notification
from tests.support.services import migrated_url  # noqa: F401  (one migrated database per run, shared)


@pytest.fixture(scope="session")
def migrated_engine(migrated_url: str) -> Iterator[Engine]:  # noqa: F811  (the fixture, by name)
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(migrated_engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test (services only flush; commits are savepoints)."""
    with migrated_engine.connect() as conn:
        outer = conn.begin()
        db = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield db
        finally:
            db.close()
            outer.rollback()


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, role=user.role)


ABSTRACT = "We fine-tune an open language model for European public administrations, in 24 languages."


@dataclass
class World:
    """Builds organisations, users and applications for a test, in its rolled-back session."""

    session: Session
    outbox: Path
    counter: int = 0
    calls: dict[str, AccessCall] = field(default_factory=dict)

    @property
    def mailer(self) -> Mailer:
        return Mailer(smtp=SmtpSettings(), outbox=self.outbox, base_url="http://portal.test")

    def _n(self) -> int:
        self.counter += 1
        return self.counter

    def org(self, name: str | None = None, *, sector: str = "academia", country: str = "DE") -> Organisation:
        return access.create_organisation(
            session=self.session, name=name or f"Org {self._n()}", sector=sector, country=country
        )

    def user(self, *, role: str = "user", org: Organisation | None = None, email: str | None = None,
             verified: bool = True, confirmed: bool = True) -> User:
        """A user whose address is verified and whose membership of ``org`` an operator confirmed (an
        applicant the factory knows), unless ``verified`` or ``confirmed`` say otherwise: automatic grants
        need both (tests/integration/applications/test_automatic_grants.py covers them missing)."""
        # Made directly, without the argon2 hash of access.create_user: tests stay fast.
        now = utcnow()
        user = User(email=email or f"u{self._n()}@example.org", role=role, organisation_id=org.id if org else None,
                    email_verified_at=now if verified else None,
                    organisation_confirmed_at=now if org and confirmed else None,
                    organisation_confirmed_via="operator" if org and confirmed else None)
        self.session.add(user)
        self.session.flush()
        return user

    def actor(self, *, role: str = "user", org: Organisation | None = None) -> tuple[User, Actor]:
        user = self.user(role=role, org=org)
        return user, actor_of(user)

    def call(self, slug: str) -> AccessCall:
        if not self.calls:
            seed_calls(self.session)
            self.calls = {c.slug: c for c in self.session.scalars(select(AccessCall))}
        return self.calls[slug]

    def mails(self, to: str | None = None) -> list[Notification]:
        query = select(Notification).order_by(Notification.created_at)
        if to is not None:
            query = query.where(Notification.to_email == to)
        return list(self.session.scalars(query))


def complete(call: str, **overrides) -> dict:
    """The fields of a complete, eligible application to ``call`` (a seeded call's slug)."""
    fields = dict(
        call_id=call,
        title="Multilingual LLM for public services",
        abstract=ABSTRACT,
        domain="language models",
        requested_gpu_hours={"booster": 1000.0},
        requested_tokens=100_000,
        duration_months={"playground": 2, "fast-lane": 3, "large-scale": 6}.get(call, 1),
        ai_act_risk="limited",
        datasets="Public EU legal texts",
        personal_data=False,
    )
    if call == "large-scale":
        fields["requested_gpu_hours"] = {"booster": 60_000.0}
    fields.update(overrides)
    return fields


@pytest.fixture
def world(session: Session, tmp_path: Path) -> World:
    return World(session=session, outbox=tmp_path / "outbox")
