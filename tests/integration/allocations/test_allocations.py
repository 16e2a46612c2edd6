"""Allocations against a real, migrated database; the token quota derived from token allocations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from jaif.access import service as access
from jaif.access.models import Project
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service
from jaif.allocations.token_quota import sync_token_quota
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest, NotFound


@pytest.fixture
def project(session, world) -> Project:
    org = world.org()
    return access.create_project(session=session, name="lab", organisation=org.name)


def _spend(session, project: Project, tokens: int, *, leased: int = 0) -> None:
    """What the gateway does: settled use moves into tokens_spent (leased: held by processes)."""
    session.execute(
        update(Project)
        .where(Project.id == project.id)
        .values(tokens_spent=Project.tokens_spent + tokens, tokens_leased=leased)
    )


def _tokens(session, project, amount, **kw):
    return service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        project_id=project.id,
        resource="tokens",
        amount=amount,
        days=kw.pop("days", 30),
        **kw,
    )


def test_a_project_without_token_allocations_is_unlimited(session, project):
    assert project.token_quota is None
    service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        project_id=project.id,
        resource="gpu_hours",
        partition="booster",
        amount=100,
        days=10,
    )
    assert project.token_quota is None
    assert sync_token_quota(session, project.id) is None


def test_token_allocations_make_the_quota(session, project):
    first = _tokens(session, project, 1000)
    assert project.token_quota == 1000
    second = _tokens(session, project, 500)
    assert project.token_quota == 1500
    _spend(session, project, 1200)
    sync_token_quota(session, project.id)
    assert (first.used, second.used, first.status) == (1000, 200, "exhausted")
    assert project.token_quota == 1500  # spent 1200 + 300 left
    service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=second.id)
    assert (second.status, second.used, project.token_quota) == ("revoked", 200, 1200)


def test_the_quota_never_falls_below_spent_and_leased(session, project):
    allocation = _tokens(session, project, 1000)
    _spend(session, project, 100, leased=400)
    service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=allocation.id)
    assert project.token_quota == 500


def test_spend_before_the_first_allocation_is_not_charged_to_it(session, project):
    _spend(session, project, 700)
    allocation = _tokens(session, project, 1000)
    assert allocation.used == 0 and project.token_quota == 1700


def test_expiry(session, project):
    old = _tokens(session, project, 1000, days=10)
    new = _tokens(session, project, 1000, days=100)
    _spend(session, project, 300)
    result = service.sweep(session=session, now=utcnow() + timedelta(days=11))
    assert (old.status, old.used, new.status, new.used) == ("expired", 300, "active", 0)
    assert (result.expired, result.projects_synced) == (1, 1)
    assert project.token_quota == 300 + 1000
    _spend(session, project, 50)  # later spend goes to what is still running
    sync_token_quota(session, project.id, now=utcnow() + timedelta(days=12))
    assert (old.used, new.used) == (300, 50)


def test_an_allocation_counts_from_its_start(session, project):
    later = service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        project_id=project.id,
        resource="tokens",
        amount=1000,
        starts_at=utcnow() + timedelta(days=5),
        days=30,
    )
    assert project.token_quota == 0  # limited, nothing to use yet
    service.sweep(session=session, now=utcnow() + timedelta(days=6))
    assert later.status == "active" and project.token_quota == 1000


def test_gpu_hours_expire_and_exhaust(session, project):
    ending = service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        project_name="lab",
        resource="gpu_hours",
        partition="booster",
        amount=10,
        days=1,
    )
    used_up = service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        project_name="lab",
        resource="gpu_hours",
        partition="booster",
        amount=10,
        days=30,
    )
    used_up.used = 10.0
    result = service.sweep(session=session, now=utcnow() + timedelta(days=2))
    assert (ending.status, used_up.status, result.expired, result.exhausted) == ("expired", "exhausted", 1, 1)


def test_project_create_and_set_quota_go_through_allocations(session, world):
    org = world.org()
    project = access.create_project(session=session, name="quota", organisation=org.name, token_quota=5000)
    [allocation] = service.list_allocations(session=session, actor=CLI_ACTOR, project_name="quota")
    assert (allocation.resource, allocation.amount, project.token_quota) == ("tokens", 5000, 5000)
    assert 364 <= (allocation.ends_at - allocation.starts_at).days <= 366
    _spend(session, project, 1000)
    access.set_token_quota(session=session, project_name="quota", token_quota=3000)
    assert project.token_quota == 3000 and allocation.status == "revoked" and allocation.used == 1000
    access.set_token_quota(session=session, project_name="quota", token_quota=500)  # below what was spent
    assert project.token_quota == 1000
    with pytest.raises(InvalidRequest, match="cannot be made unlimited"):
        access.set_token_quota(session=session, project_name="quota", token_quota=None)
    zero = access.create_project(session=session, name="zero", organisation=org.name, token_quota=0)
    assert zero.token_quota == 0


def test_bad_allocations_are_refused(session, project):
    def create(**kw):
        fields = dict(session=session, actor=CLI_ACTOR, project_id=project.id, resource="tokens", amount=10, days=1)
        return service.create_allocation(**{**fields, **kw})

    with pytest.raises(InvalidRequest, match="partition"):
        create(resource="gpu_hours")
    with pytest.raises(InvalidRequest, match="no partition"):
        create(partition="booster")
    with pytest.raises(InvalidRequest, match="whole numbers"):
        create(amount=1.5)
    with pytest.raises(InvalidRequest, match="more than 0"):
        create(amount=0)
    with pytest.raises(InvalidRequest, match="end after it starts"):
        create(days=None, ends_at=utcnow() - timedelta(days=1))
    with pytest.raises(InvalidRequest, match="ends_at or days"):
        create(days=None)
    with pytest.raises(NotFound):
        create(project_id="0" * 32)
    allocation = create()
    service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=allocation.id)
    with pytest.raises(Conflict, match="revoked already"):
        service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=allocation.id)
    with pytest.raises(NotFound):
        service.get_allocation(session=session, actor=CLI_ACTOR, allocation_id="nope")


def test_the_pis_are_told(session, world, project):
    pi = world.user(email="pi@lab.example")
    access.add_member(session=session, project_name="lab", email=pi.email, role="pi")
    service.create_allocation(
        session=session,
        actor=CLI_ACTOR,
        mailer=world.mailer,
        project_id=project.id,
        resource="gpu_hours",
        partition="booster",
        amount=250,
        days=30,
    )
    [mail] = world.mails(pi.email)
    assert mail.subject == "New allocation for project lab" and "250 GPU-hours on partition booster" in mail.body


def test_the_fingerprint_changes_with_every_allocation_change(session, project):
    # Servers watch it to push allocation changes to Slurm within seconds (runtime.ALLOCATION_WATCH_S).
    before = service.fingerprint(session=session)
    allocation = _tokens(session, project, 1000)
    made = service.fingerprint(session=session)
    assert made != before
    assert service.fingerprint(session=session) == made  # nothing changed, nothing to push
    service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=allocation.id)
    assert service.fingerprint(session=session) != made
