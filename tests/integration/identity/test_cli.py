"""`jaif token create` and `jaif user create` as operators run them: the secret alone on the last line."""

from __future__ import annotations

from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats
from tests.support.procs import jaif, last_line


def test_token_create_prints_a_working_token_on_its_last_line(jaif_env, database_url):
    jaif(jaif_env, "db", "upgrade")
    password = last_line(jaif(jaif_env, "user", "create", "ops@example.org", "--role", "operator"))
    assert len(password) >= 12
    result = jaif(jaif_env, "token", "create", "--user", "ops@example.org", "--name", "ci", "--expires-in-days", "30")
    token = last_line(result)
    assert token.startswith("jaifpat-") and "shown only now" in result.stdout
    listed = jaif(jaif_env, "token", "list", "--user", "ops@example.org").stdout
    assert token[:16] in listed and token not in listed

    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            assert pats.authenticate(session=session, secret=token).email == "ops@example.org"
    finally:
        engine.dispose()

    jaif(jaif_env, "token", "revoke", token[:16], "--user", "ops@example.org")
    unknown = jaif(jaif_env, "token", "create", "--user", "nobody@example.org", check=False)
    assert unknown.returncode == 1 and "nobody@example.org" in unknown.stderr
