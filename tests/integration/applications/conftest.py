"""One migrated database per backend, a rolled-back session per test (tests/support/frontdoor.py), and
the REST API on that session (tests/support/frontdoor_api.py)."""

from tests.support.frontdoor import migrated_engine, migrated_url, session, world
from tests.support.frontdoor_api import api

__all__ = ["api", "migrated_engine", "migrated_url", "session", "world"]
