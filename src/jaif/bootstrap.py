"""First start: migrate, register the built-in models, create the operator and a demo project."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import User
from jaif.calls.seed import PARTITION, seed_calls
from jaif.catalogue import service as catalogue
from jaif.inference import service as inference

DEMO_ORG = "Demo Organisation"
DEMO_PROJECT = "demo"
OPERATOR_EMAIL = "operator@jaif.local"  # a dotted domain: the sign-in form checks for one


@dataclass
class FirstCredentials:
    operator_email: str
    operator_password: str
    project: str
    api_key: str


def initialise(*, session: Session, builtin_models: bool, partition: str = PARTITION) -> FirstCredentials | None:
    """Idempotent. Returns the one-time credentials when it created them (the first run), else None.
    ``partition``: where the seeded calls offer GPU-hours (the site's; `jaif init` picks it)."""
    if builtin_models:
        inference.seed_builtin_models(session=session)
        catalogue.seed_builtin_solutions(session=session)
    seed_calls(session, partition)  # the three EuroHPC-style calls, when no call exists yet
    if session.scalar(select(User).limit(1)) is not None:
        return None
    operator, password = access.create_user(session=session, email=OPERATOR_EMAIL, role="operator", name="Operator")
    access.create_organisation(session=session, name=DEMO_ORG, sector="public", country="DE")
    access.create_project(
        session=session,
        name=DEMO_PROJECT,
        organisation=DEMO_ORG,
        token_quota=1_000_000,
        description="A demo project made on first start, with a million tokens.",
    )
    access.add_member(session=session, project_name=DEMO_PROJECT, email=operator.email, role="pi")
    _key, secret = access.create_api_key(
        session=session, project_name=DEMO_PROJECT, user_email=operator.email, name="first key"
    )
    return FirstCredentials(operator.email, password, DEMO_PROJECT, secret)
