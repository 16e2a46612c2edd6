"""Schemathesis fuzzes the front door's REST API (calls, applications, reviews, allocations,
organisations, projects) in-process, as a user, a reviewer and an operator, on SQLite and PostgreSQL:
no 5xx, and every answer as the OpenAPI document says.

Half of the generated cases get the id of a real object in place of the random one, so that fuzzed
bodies reach the services rather than only "404 not found".
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import select

from jaif.access import service as access
from jaif.access.models import User
from jaif.allocations.models import Allocation
from jaif.app import create_app
from jaif.applications import reviews
from jaif.applications import service as applications
from jaif.applications.schemas import DraftIn
from jaif.bootstrap import initialise
from jaif.config import InferenceSettings, Settings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats
from tests.support.frontdoor import actor_of, complete
from tests.support.fuzz import fuzz_all

PATHS = {
    "/api/v1/calls", "/api/v1/calls/{ref}", "/api/v1/calls/{ref}/time-to-access",
    "/api/v1/applications", "/api/v1/applications/{application_id}",
    "/api/v1/applications/{application_id}/problems", "/api/v1/applications/{application_id}/submit",
    "/api/v1/applications/{application_id}/withdraw", "/api/v1/applications/{application_id}/stage",
    "/api/v1/applications/{application_id}/decision", "/api/v1/applications/{application_id}/allocate",
    "/api/v1/reviews", "/api/v1/reviews/{review_id}/submit",
    "/api/v1/allocations", "/api/v1/allocations/sweep", "/api/v1/allocations/{allocation_id}",
    "/api/v1/allocations/{allocation_id}/revoke",
    "/api/v1/organisations", "/api/v1/organisations/{organisation_id}",
    "/api/v1/projects", "/api/v1/projects/{project_id}",
}
MAX_EXAMPLES = 8
RUNS = (("user", GenerationMode.POSITIVE), ("reviewer", GenerationMode.POSITIVE),
        ("operator", GenerationMode.POSITIVE), ("operator", GenerationMode.NEGATIVE))


@pytest.fixture
def front_door(database_url, tmp_path, test_databases):
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        initialise(session=session, builtin_models=False)
        org = access.create_organisation(session=session, name="Uni", sector="academia", country="DE")
        # A verified address and a confirmed membership: the Playground grants at once (docs/access.md).
        user = User(email="user@uni.example", organisation_id=org.id, email_verified_at=utcnow(),
                    organisation_confirmed_at=utcnow(), organisation_confirmed_via="operator")
        reviewer = User(email_verified_at=utcnow(), email="reviewer@other.example", role="reviewer")
        operator = User(email_verified_at=utcnow(), email="op@factory.example", role="operator")
        session.add_all([user, reviewer, operator])
        session.flush()
        drafts = [
            applications.create_draft(session=session, actor=actor_of(user), data=DraftIn(**complete(call)))
            for call in ("fast-lane", "playground", "large-scale")
        ]
        for draft in drafts[:2]:
            applications.submit(session=session, actor=actor_of(user), mailer=None, application_id=draft.id)
        review = reviews.assign(session=session, actor=actor_of(operator), mailer=None,
                                application_id=drafts[0].id, reviewer_email=reviewer.email, stage="technical")
        project = drafts[1].project  # the Playground one, allocated at once
        allocation = session.scalars(select(Allocation).where(Allocation.project_id == project.id)).first()
        known = {"application_id": drafts[0].id, "review_id": review.id, "allocation_id": allocation.id,
                 "ref": "fast-lane", "organisation_id": org.id, "project_id": project.id}
        tokens = {who: pats.create(session=session, user_id=u.id)[1]
                  for who, u in (("user", user), ("reviewer", reviewer), ("operator", operator))}
    engine.dispose()
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path / "var",
                              inference=InferenceSettings(builtin_models=False)))
    try:
        yield {"schema": schemathesis.openapi.from_asgi("/openapi.json", app), "tokens": tokens, "known": known}
    finally:
        shutdown_lifespans()


@pytest.mark.slow
def test_no_server_errors_and_answers_as_documented(front_door):
    operations = [r.ok() for r in front_door["schema"].get_all_operations()]
    operations = [o for o in operations if o.path in PATHS]
    assert len(operations) >= 25
    statuses = fuzz_all(operations, RUNS, front_door["tokens"], front_door["known"],
                        max_examples=MAX_EXAMPLES, body_ids=("application_id", "project_id"))
    assert all(s and max(s) < 500 for s in statuses.values()), statuses
    assert sum(1 for s in statuses.values() if any(200 <= code < 300 for code in s)) >= 10, statuses

