"""Schemathesis fuzzes the services' REST API (support requests, solutions, training events) in-process,
as a user and as an operator, on SQLite and PostgreSQL: no 5xx, and every answer as documented.

Half of the generated cases get the id of a real request, solution or event in place of the random one,
so that fuzzed bodies reach the services rather than only "404 not found".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from jaif.access.models import Organisation, Project, ProjectMember, User
from jaif.app import create_app
from jaif.catalogue import service as catalogue
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats
from jaif.notify.mail import Mailer
from jaif.support import service as support
from jaif.training import service as training
from tests.support.fuzz import fuzz_all
from tests.support.services import actor_of, app_settings

PREFIXES = ("/api/v1/support-requests", "/api/v1/solutions", "/api/v1/training-events")
MAX_EXAMPLES = 10
# Negative cases test validation, which does not depend on who asks: only the operator's are sent.
RUNS = (("user", GenerationMode.POSITIVE), ("operator", GenerationMode.POSITIVE), ("operator", GenerationMode.NEGATIVE))


@pytest.fixture
def services_api(database_url, tmp_path, test_databases):
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        op = User(email_verified_at=utcnow(), email="op@example.org", role="operator")
        user = User(email_verified_at=utcnow(), email="user@example.org")
        org = Organisation(name="Org", sector="academia", country="DE")
        project = Project(name="lab", organisation=org)
        session.add_all([op, user, org, project])
        session.flush()
        session.add(ProjectMember(project_id=project.id, user_id=user.id))
        mailer = Mailer(smtp=app_settings(database_url, tmp_path).smtp, outbox=tmp_path / "outbox", base_url="http://x")
        request = support.create_request(
            session=session, mailer=mailer, actor=actor_of(user), category="other", subject="s", body="b"
        )
        catalogue.create_solution(session=session, actor=actor_of(op), slug="known", name="Known", is_published=True)
        starts = datetime.now(UTC) + timedelta(days=3)
        event = training.create_event(
            session=session,
            actor=actor_of(op),
            title="t",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            seats=2,
        )
        tokens = {
            "user": pats.create(session=session, user_id=user.id)[1],
            "operator": pats.create(session=session, user_id=op.id)[1],
        }
        known = {"request_id": request.id, "slug": "known", "event_id": event.id, "assignee_id": op.id}
    engine.dispose()
    app = create_app(app_settings(database_url, tmp_path))
    try:
        yield {"schema": schemathesis.openapi.from_asgi("/openapi.json", app), "tokens": tokens, "known": known}
    finally:
        shutdown_lifespans()


def _operations(schema):
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(PREFIXES):
            yield operation


@pytest.mark.slow
def test_no_server_errors_and_answers_as_documented(services_api):
    operations = list(_operations(services_api["schema"]))
    assert len(operations) >= 15
    statuses = fuzz_all(operations, RUNS, services_api["tokens"], services_api["known"],
                        max_examples=MAX_EXAMPLES, body_ids=("assignee_id",))
    assert all(s and max(s) < 500 for s in statuses.values()), statuses
    # Real ids let valid requests through, not only 4xx.
    assert any(200 <= code < 300 for s in statuses.values() for code in s)

