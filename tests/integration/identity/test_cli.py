"""`jaif token create` and `jaif user create` as operators run them: the secret alone on the last line."""

from __future__ import annotations

from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats
from tests.support.procs import last_line
from tests.support.services import Cli


def test_token_create_prints_a_working_token_on_its_last_line(jaif_env, database_url):
    jaif = Cli(jaif_env)
    jaif("db", "upgrade")
    password = last_line(jaif("user", "create", "ops@example.org", "--role", "operator"))
    assert len(password) >= 12
    result = jaif("token", "create", "--user", "ops@example.org", "--name", "ci", "--expires-in-days", "30")
    token = last_line(result)
    assert token.startswith("jaifpat-") and "shown only now" in result.stdout
    listed = jaif("token", "list", "--user", "ops@example.org").stdout
    assert token[:16] in listed and token not in listed

    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            assert pats.authenticate(session=session, secret=token).email == "ops@example.org"
    finally:
        engine.dispose()

    jaif("token", "revoke", token[:16], "--user", "ops@example.org")
    unknown = jaif("token", "create", "--user", "nobody@example.org", check=False)
    assert unknown.returncode == 1 and "nobody@example.org" in unknown.stderr
