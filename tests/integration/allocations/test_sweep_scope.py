"""The sweep syncs only the projects whose token books would change (token_quota.stale_projects), and those are
exactly the ones a sync of every project would change: new spend, an allocation used up, ended or started."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select, update

from jaif.access import service as access
from jaif.access.models import Project
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service
from jaif.allocations.models import Allocation
from jaif.allocations.token_quota import stale_projects, sync_token_quota
from jaif.db.base import utcnow


def _project(session, world, name: str, *, amount: int, starts_in_days: float = 0, days: float = 30) -> Project:
    project = access.create_project(session=session, name=name, organisation=world.org().name)
    service.create_allocation(session=session, actor=CLI_ACTOR, project_id=project.id, resource="tokens",
                              amount=amount, starts_at=utcnow() + timedelta(days=starts_in_days), days=days)
    return project


def _books(session, project_ids):
    session.expire_all()
    quotas = dict(session.execute(select(Project.id, Project.token_quota).where(Project.id.in_(project_ids))).all())
    allocations = sorted(session.execute(select(Allocation.project_id, Allocation.status, Allocation.used)
                                         .where(Allocation.project_id.in_(project_ids))).all())
    return quotas, allocations


def test_only_projects_whose_books_change_are_synced(session, world):
    quiet = _project(session, world, "quiet", amount=1000)
    spending = _project(session, world, "spending", amount=1000)
    ending = _project(session, world, "ending", amount=1000, days=2)
    used_up = _project(session, world, "used-up", amount=100)
    starting = _project(session, world, "starting", amount=500, starts_in_days=1)
    everyone = [p.id for p in (quiet, spending, ending, used_up, starting)]
    session.execute(update(Project).where(Project.id == spending.id).values(tokens_spent=Project.tokens_spent + 40))
    session.execute(update(Project).where(Project.id == used_up.id).values(tokens_spent=Project.tokens_spent + 100))
    assert stale_projects(session, now=utcnow()) == sorted([spending.id, used_up.id])

    later = utcnow() + timedelta(days=3)  # "ending" has ended, "starting" has started
    expected = sorted([spending.id, ending.id, used_up.id, starting.id])
    assert stale_projects(session, now=later) == expected
    # The same as syncing every project: those left out are unchanged by a sync.
    nested = session.begin_nested()
    for project_id in everyone:
        sync_token_quota(session, project_id, now=later)
    every_synced = _books(session, everyone)
    nested.rollback()
    result = service.sweep(session=session, now=later)
    assert result.projects_synced == 4 and (result.expired, result.exhausted) == (1, 1)
    assert _books(session, everyone) == every_synced
    assert stale_projects(session, now=later) == []


def test_listing_a_projects_allocations_locks_it_only_when_its_books_change(session, world):
    project = _project(session, world, "viewed", amount=1000)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(session.get_bind(), "before_cursor_execute", record)
    try:
        service.list_allocations(session=session, actor=CLI_ACTOR, project_id=project.id)
        assert not [s for s in statements if "FOR " in s.upper()]  # nothing to attribute: no lock, no write
        session.execute(update(Project).where(Project.id == project.id).values(tokens_spent=Project.tokens_spent + 70))
        [allocation] = service.list_allocations(session=session, actor=CLI_ACTOR, project_id=project.id)
        assert allocation.used == 70  # new spend: synced (and locked) as before
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", record)
