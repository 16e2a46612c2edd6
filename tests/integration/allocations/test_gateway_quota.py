"""The gateway enforces the quota that token allocations make: one source of truth, real transactions.

A Meter (what each `jaif serve` process runs: quota leases and usage ledger) admits, finishes, flushes
and gives back against a fresh migrated database while allocations are granted and revoked beside them. Also: the
migration turns the quotas of existing projects into token allocations.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from jaif.access import service as access
from jaif.access.models import Project
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service
from jaif.allocations.models import Allocation
from jaif.config import MeteringSettings
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.db.migrate import alembic_config, upgrade
from jaif.errors import QuotaExceeded
from jaif.metering.meter import Meter
from tests.integration.metering.conftest import outcome, principal


@pytest.fixture
def factory(database_url, test_databases):
    test_databases.migrate(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
async def meter(factory):
    """The test's gateway process: a Meter on the test's database, closed after it."""
    made = Meter(factory, MeteringSettings(lease_tokens=100, lease_ttl_s=60, lease_idle_return_s=60), holder="test")
    yield made
    await made.ledger.aclose()


async def _use(meter: Meter, project_id: str, tokens: int) -> None:
    """A request that used ``tokens``, its record flushed (Meter.tick)."""
    ticket = await meter.admit(principal(project_id), tokens=tokens)
    await meter.finish(ticket, outcome(tokens))
    await meter.tick()


async def _refused(meter: Meter, project_id: str, tokens: int) -> None:
    with pytest.raises(QuotaExceeded):
        await meter.admit(principal(project_id), tokens=tokens)


async def test_the_gateway_spends_what_allocations_give(factory, meter):
    with transaction(factory) as session:
        access.create_organisation(session=session, name="Org", sector="academia", country="DE")
        project_id = access.create_project(session=session, name="p", organisation="Org", token_quota=1000).id
    await _use(meter, project_id, 600)
    await _refused(meter, project_id, 500)

    with transaction(factory) as session:
        [first] = service.list_allocations(session=session, actor=CLI_ACTOR, project_id=project_id)
        assert first.used == 600  # naming the project brings its books up to date
        more = service.create_allocation(session=session, actor=CLI_ACTOR, project_id=project_id, resource="tokens",
                                         amount=1000, days=30)
        more_id = more.id
    await _use(meter, project_id, 900)  # 400 left of the first, 500 of the second

    await meter.close()  # every slice given back
    with transaction(factory) as session:
        service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=more_id)
        project = session.get(Project, project_id)
        used = {a.id: a.used for a in session.scalars(sa.select(Allocation).where(Allocation.project_id == project_id))}
        assert project.tokens_spent == 1500 and project.token_quota == 1500 and project.tokens_leased == 0
        assert used[more_id] == 500 and sorted(used.values()) == [500, 1000]
    await _refused(meter, project_id, 1)
    with transaction(factory) as session:
        project = session.get(Project, project_id)
        assert project.tokens_spent + project.tokens_leased <= project.token_quota


def test_the_migration_turns_quotas_into_allocations(database_url):
    upgrade(database_url, "0003")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO organisations (id, name, sector, country, created_at) "
                             "VALUES ('o1', 'Org', 'academia', 'DE', CURRENT_TIMESTAMP)"))
        for pid, quota, spent in (("p1", 5000, 1200), ("p2", None, 30)):
            conn.execute(sa.text(
                "INSERT INTO projects (id, name, organisation_id, description, is_active, token_quota, tokens_spent, "
                "tokens_leased, created_at) VALUES (:id, :id, 'o1', '', true, :quota, :spent, 0, CURRENT_TIMESTAMP)"
            ), {"id": pid, "quota": quota, "spent": spent})
    upgrade(database_url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        [allocation] = session.scalars(sa.select(Allocation))
        assert (allocation.project_id, allocation.resource, allocation.amount, allocation.used) == ("p1", "tokens",
                                                                                                    5000, 1200)
        service.sweep(session=session)
        quotas = dict(session.execute(sa.select(Project.id, Project.token_quota)).all())
        assert quotas == {"p1": 5000, "p2": None}
    command.downgrade(alembic_config(database_url), "0003")
    engine.dispose()


async def test_an_allocation_that_ends_lowers_the_quota_at_the_next_sweep(factory, meter):
    """Nothing writes when an allocation's end passes; the server's minute sweep (runtime.py calls
    ``service.sweep`` with the time now) finds the project stale, expires the allocation and lowers the quota
    that the gateway enforces, for a project with another allocation running and for one left with none."""
    with transaction(factory) as session:
        access.create_organisation(session=session, name="Org", sector="academia", country="DE")
        ids = {}
        for name in ("two", "one"):
            ids[name] = access.create_project(session=session, name=name, organisation="Org").id
            ids[name + "-ending"] = service.create_allocation(
                session=session, actor=CLI_ACTOR, project_id=ids[name], resource="tokens", amount=1000, days=30).id
        service.create_allocation(session=session, actor=CLI_ACTOR, project_id=ids["two"], resource="tokens",
                                  amount=300, days=60)
    for name in ("two", "one"):
        await _use(meter, ids[name], 200)
    await meter.close()  # every slice given back
    with transaction(factory) as session:
        assert {session.get(Project, ids[n]).token_quota for n in ("two", "one")} == {1300, 1000}
    with transaction(factory) as session:  # time passes: the first allocations end, and nothing else happens
        session.execute(sa.update(Allocation).where(Allocation.id.in_([ids["two-ending"], ids["one-ending"]]))
                        .values(ends_at=utcnow() - timedelta(minutes=1)))

    with transaction(factory) as session:
        result = service.sweep(session=session)
        assert (result.expired, result.projects_synced) == (2, 2)
    with transaction(factory) as session:
        two, one = session.get(Project, ids["two"]), session.get(Project, ids["one"])
        assert (two.tokens_spent, two.token_quota) == (200, 500)  # spent + what the 300 allocation has left
        assert (one.tokens_spent, one.token_quota) == (200, 200)  # spent: nothing more
        statuses = dict(session.execute(sa.select(Allocation.id, Allocation.status)).all())
        assert statuses[ids["two-ending"]] == statuses[ids["one-ending"]] == "expired"
    await _refused(meter, ids["one"], 1)
    await _refused(meter, ids["two"], 301)
    await meter.finish(await meter.admit(principal(ids["two"]), tokens=300))
    with transaction(factory) as session:
        assert service.sweep(session=session).projects_synced == 0  # and a second sweep has nothing to do
