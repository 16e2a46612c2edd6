"""Schemathesis fuzzes the identity API (/api/v1/me, tokens, a project's members, invitations and keys)
in-process, as a project's PI and as an operator: no 5xx, and every answer as documented.

Half of the generated cases get a real id (the project, a member, a token, a key, an invitation) in
place of the random one, so that fuzzed bodies reach the services rather than only "404 not found".
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from jaif.access import service as access
from jaif.access.models import Organisation, Project, ProjectMember, User
from jaif.app import create_app
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats, team
from jaif.notify.mail import Mailer
from tests.support.fuzz import fuzz_all
from tests.support.services import actor_of, app_settings

MAX_EXAMPLES = 10
RUNS = (("pi", GenerationMode.POSITIVE), ("operator", GenerationMode.POSITIVE), ("operator", GenerationMode.NEGATIVE))


def _ours(path: str) -> bool:
    return path.startswith("/api/v1/me") or (
        path.startswith("/api/v1/projects/{project_id}/") and path.split("/")[5] in ("members", "invitations", "keys")
    )


@pytest.fixture
def identity_api(database_url, tmp_path, test_databases):
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    settings_ = app_settings(database_url, tmp_path)
    with transaction(make_session_factory(engine)) as session:
        verified = utcnow()
        op = User(email_verified_at=verified, email="op@example.org", role="operator")
        pi = User(email_verified_at=verified, email="pi@example.org")
        member = User(email_verified_at=verified, email="member@example.org")
        org = Organisation(name="Org", sector="academia", country="DE")
        project = Project(name="lab", organisation=org)
        session.add_all([op, pi, member, org, project])
        session.flush()
        session.add_all([ProjectMember(project_id=project.id, user_id=pi.id, role="pi"),
                         ProjectMember(project_id=project.id, user_id=member.id)])
        session.flush()
        key, _secret = access.create_api_key(session=session, project_name="lab")
        spare, _ = pats.create(session=session, user_id=pi.id, name="spare")
        mailer = Mailer(smtp=settings_.smtp, outbox=tmp_path / "outbox", base_url="http://x")
        invitation = team.invite(session=session, actor=actor_of(pi), project_id=project.id,
                                       email="new@example.org", role="member", settings=settings_.identity,
                                       mailer=mailer)
        tokens = {"pi": pats.create(session=session, user_id=pi.id)[1],
                  "operator": pats.create(session=session, user_id=op.id)[1]}
        known = {"project_id": project.id, "user_id": member.id, "token_id": spare.id, "key_id": key.id,
                 "invitation_id": invitation.id}
    engine.dispose()
    app = create_app(settings_)
    try:
        yield {"schema": schemathesis.openapi.from_asgi("/openapi.json", app), "tokens": tokens, "known": known}
    finally:
        shutdown_lifespans()


@pytest.mark.slow
def test_no_server_errors_and_answers_as_documented(identity_api):
    operations = [r.ok() for r in identity_api["schema"].get_all_operations() if _ours(r.ok().path)]
    assert len(operations) == 12, [o.path for o in operations]
    statuses = fuzz_all(operations, RUNS, identity_api["tokens"], identity_api["known"], max_examples=MAX_EXAMPLES)
    assert all(s and max(s) < 500 for s in statuses.values()), statuses
    assert any(200 <= code < 300 for s in statuses.values() for code in s)

