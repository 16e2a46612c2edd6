"""The portal's pages driven like a browser (tests/support/portal.py): one migrated database per backend,
each test rolled back (tests/support/services.py), the seeded calls, and helpers to fill in forms."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from jaif.access.models import Organisation, User
from jaif.calls.seed import seed_calls
from tests.support.services import api, engine, factory, migrated_url, portal, session, world  # noqa: F401


@pytest.fixture
def seeded(session: Session) -> Session:  # noqa: F811 (the fixture imported above)
    """The three seeded calls (Playground, Fast Lane, Large Scale), visible to the app's sessions."""
    seed_calls(session)
    session.commit()
    return session


def give_organisation(db: Session, actor, *, name: str, country: str = "DE", sector: str = "academia"):
    org = Organisation(name=name, sector=sector, country=country)
    db.add(org)
    db.flush()
    db.get(User, actor.user_id).organisation_id = org.id
    db.commit()
    return org


def location_id(response, pattern: str) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:800])
    found = re.fullmatch(pattern, response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)
