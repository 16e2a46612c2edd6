"""`jaif org domain` and `jaif org members`: operators register an organisation's e-mail domains and
confirm memberships from the command line (issue 9, item 8; the rule is in docs/access.md)."""

from __future__ import annotations

from sqlalchemy import select

from jaif.access.models import Organisation, User
from jaif.db.engine import make_engine, make_session_factory, transaction
from tests.support.services import Cli


def test_operators_register_domains_and_confirm_members(jaif_env, database_url):
    jaif = Cli(jaif_env)  # in-process: tests/support/services.py
    jaif("db", "upgrade")
    jaif("org", "create", "Uni CLI", "--sector", "academia", "--country", "DE")
    jaif("user", "create", "ada@elsewhere.example")
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            org_id = session.scalar(select(Organisation.id).where(Organisation.name == "Uni CLI"))
            session.scalar(select(User).where(User.email == "ada@elsewhere.example")).organisation_id = org_id
        added = jaif("org", "domain", "Uni CLI", "--add", "uni-cli.example").stdout
        assert "Uni CLI: uni-cli.example" in added
        wide = Cli({**jaif_env, "COLUMNS": "200"})
        assert "pending" in wide("org", "members", "Uni CLI").stdout
        confirmed = wide("org", "members", "Uni CLI", "--confirm", "ada@elsewhere.example").stdout
        assert "confirmed" in confirmed and "operator" in confirmed
        refused = jaif("org", "domain", "Uni CLI", "--add", "not a domain", check=False)
        assert refused.returncode != 0 and "domain" in refused.stderr
        removed = jaif("org", "domain", "Uni CLI", "--remove", "uni-cli.example").stdout
        assert "Uni CLI: no domains" in removed
    finally:
        engine.dispose()
