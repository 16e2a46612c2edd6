"""Allocation -> Slurm sync against a fake of our AccountManager protocol that applies sacctmgr's
commands as Slurm does (accounts, associations, GrpTRESMins), so that re-syncing can be checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jaif.access.models import ProjectMember
from jaif.compute import sync
from jaif.compute.naming import org_account, project_account
from jaif.errors import Conflict, InvalidRequest
from tests.integration.compute.conftest import grant
from tests.support.sacctmgr import MemorySacctmgr


@pytest.fixture
def accounts(compute):
    compute.accounts = MemorySacctmgr()
    return compute.accounts


def name_user(session, actor, username):
    return sync.set_username(session=session, email=actor.email, username=username)


def test_first_sync_creates_what_it_planned_and_the_second_changes_nothing(session, compute, accounts, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab = world.project(alice, bob)
    grant(session, lab, gpu_hours=10)
    grant(session, lab, gpu_hours=5)
    name_user(session, alice, "alice")
    plan = sync.sync(session=session, compute=compute, dry_run=True)
    assert accounts.rows.keys() == {("root", ""), ("root", "root")}  # a dry run changes nothing
    done = sync.sync(session=session, compute=compute)
    assert done.plan.changes == plan.plan.changes and done.errors == [] and done.remaining == []
    org = org_account(lab.organisation.name, "org_")
    account = project_account(lab.name)
    assert accounts.rows[(org, "")] == ["root", ""]
    assert accounts.rows[(account, "")] == [org, "gres/gpu=900"]  # 15 GPU-hours
    assert {u for (a, u) in accounts.rows if a == account and u} == {"alice", "nobody"}  # bob has no name
    assert done.plan.unnamed == 1
    again = sync.sync(session=session, compute=compute)
    assert again.plan.commands == [] and again.plan.changes == [] and again.plan.drift == []


def test_ended_allocations_block_the_account_and_a_new_one_opens_it(session, compute, accounts, world):
    lab = world.project(world.user())
    old = grant(session, lab, gpu_hours=10, starts_at=datetime.now(UTC) - timedelta(days=40), days=30)
    old.used = 4.0
    sync.sync(session=session, compute=compute)
    account = project_account(lab.name)
    assert accounts.rows[(account, "")][1] == "gres/gpu=0"
    blocked = sync.sync(session=session, compute=compute, dry_run=True)
    assert blocked.plan.blocked == [f"{account} (project {lab.name}): allocation expired, GrpTRESMins=gres/gpu=0"]
    grant(session, lab, gpu_hours=2)
    opened = sync.sync(session=session, compute=compute)
    # Slurm counts usage since the account was made: what the old allocation used stays in the limit
    assert accounts.rows[(account, "")][1] == "gres/gpu=360"
    assert opened.plan.changes == [f"set GrpTRESMins of {account} from 0 GPU-minutes to 360 GPU-minutes"]


@pytest.mark.parametrize("how", ["exhausted", "revoked"])
def test_exhausted_or_revoked_blocks(session, compute, accounts, world, how):
    lab = world.project(world.user())
    allocation = grant(session, lab, gpu_hours=10)
    if how == "exhausted":
        allocation.used = 10.0
    else:
        allocation.status, allocation.revoked_at = "revoked", datetime.now(UTC)
    result = sync.sync(session=session, compute=compute)
    assert accounts.rows[(project_account(lab.name), "")][1] == "gres/gpu=0"
    assert how in result.plan.blocked[0]


def test_people_who_leave_lose_their_association(session, compute, accounts, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab = world.project(alice, bob)
    grant(session, lab)
    name_user(session, alice, "alice")
    name_user(session, bob, "bob")
    sync.sync(session=session, compute=compute)
    session.query(ProjectMember).filter_by(user_id=bob.user_id).delete()
    result = sync.sync(session=session, compute=compute)
    account = project_account(lab.name)
    assert result.plan.changes == [f"remove user bob from account {account}"]
    assert (account, "bob") not in accounts.rows and (account, "alice") in accounts.rows


def test_drift_reports_what_slurm_has_and_jaif_does_not(session, compute, accounts, world):
    lab = world.project(world.user())
    grant(session, lab)
    sync.sync(session=session, compute=compute)
    org = org_account(lab.organisation.name, "org_")
    accounts.rows[("stale", "")] = [org, "gres/gpu=5"]
    accounts.rows[(project_account(lab.name), "")][1] = "gres/gpu=1"
    result = sync.sync(session=session, compute=compute, dry_run=True)
    assert f"Slurm has account stale under {org}; jaif has nothing for it (left as it is)" in result.plan.drift
    assert f"account {project_account(lab.name)} has 1 GPU-minutes in Slurm; jaif expects 600" in result.plan.drift
    assert result.plan.commands == []
    account = project_account(lab.name)
    assert result.plan.load == [f"Parent - '{org}'", f"Account - '{account}':GrpTRESMins=gres/gpu=600"]


def test_many_projects_take_two_sacctmgr_processes(session, compute, accounts, world):
    for _ in range(20):
        lab = world.project(world.user(), world.user())
        grant(session, lab)
    result = sync.sync(session=session, compute=compute)
    assert accounts.processes == 3 and result.processes == 3  # read, load, read back
    assert result.plan.commands == [] and len(result.plan.load) == 1 + 20 + 2 * 20 + 2 * 20


def test_usernames_are_checked_and_unique(session, world):
    alice, bob = world.user("alice"), world.user("bob")
    with pytest.raises(InvalidRequest, match="lower-case letters"):
        name_user(session, alice, "Alice Smith")
    name_user(session, alice, "asmith")
    with pytest.raises(Conflict, match="belongs to another jaif user"):
        name_user(session, bob, "asmith")
    assert name_user(session, alice, None) is None


def test_the_local_executor_has_nothing_to_sync(session, compute):
    result = sync.sync(session=session, compute=compute)
    assert result.note == "the slurm executor has no accounts to sync" and result.plan.commands == []
