"""leader.py: of the servers sharing a database, one runs the deployments' controller; another takes
over once it stops (PostgreSQL: an advisory lock; SQLite: a lock file beside the database)."""

from __future__ import annotations

from jaif.db.engine import make_engine
from jaif.deployments.controller import Controller
from jaif.deployments.leader import Leadership


def test_one_leader_at_a_time_and_takeover(migrated_url):
    first_engine, second_engine = make_engine(migrated_url), make_engine(migrated_url)  # two servers
    first, second = Leadership(first_engine), Leadership(second_engine)
    try:
        assert first.held() is True
        assert second.held() is False
        assert first.held() is True and second.held() is False  # it keeps it, tick after tick
        first.close()  # the leader stops
        assert second.held() is True
        assert first.held() is False
    finally:
        first.close()
        second.close()
        first_engine.dispose()
        second_engine.dispose()


def test_a_controller_that_does_not_lead_does_nothing():
    def fail():
        raise AssertionError("a follower must not read the deployments")

    follower = Controller(fail, compute=None, settings=None, probe=None, leads=lambda: False)  # type: ignore[arg-type]
    assert follower.tick() is False
