"""The accounting import: GPU-hours, energy and CO2 per job, charged once to the allocations, resumable."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jaif.allocations.models import Allocation
from jaif.compute import accounting
from jaif.compute.models import Job, JobRecord, JobState
from jaif.compute.naming import project_account
from jaif.config import PartitionProfile
from tests.integration.compute.conftest import grant


@pytest.fixture
def transactions(session):
    """What the CLI passes: a fresh transaction per call (here savepoints in the test's session)."""

    @contextmanager
    def open_transaction():
        with session.begin_nested():
            yield session

    return open_transaction


def run_import(transactions, compute, **kw):
    return accounting.import_accounting(session_factory=transactions, compute=compute, **kw)


def test_jobs_are_charged_once_with_energy_and_co2(session, compute, scheduler, world, transactions):
    lab = world.project(world.user())
    allocation = grant(session, lab, gpu_hours=10)
    account = project_account(lab.name)
    scheduler.finish("7", seconds=3600, gpus=2, account=account)  # 2 GPU-hours, 1.4 kWh by the model
    scheduler.finish("8", seconds=1800, gpus=4, account=account, energy_j=7_200_000)  # measured: 2 kWh
    scheduler.finish("9", seconds=600, gpus=1, account="root")  # not a project's
    result = run_import(transactions, compute)
    assert (result.seen, result.imported, result.already, result.foreign) == (3, 2, 0, 1)
    assert result.gpu_hours == pytest.approx(4.0) and result.energy_kwh == pytest.approx(3.4)
    records = {r.job_id: r for r in session.scalars(select(JobRecord))}
    assert records["7"].energy_source == "model" and records["7"].energy_kwh == pytest.approx(1.4)
    assert records["8"].energy_source == "slurm" and records["8"].energy_kwh == pytest.approx(2.0)
    assert records["7"].co2_kg == pytest.approx(1.4 * 0.38)
    assert {r.allocation_id for r in records.values()} == {allocation.id}
    assert allocation.used == pytest.approx(4.0)
    again = run_import(transactions, compute)
    assert (again.imported, again.already) == (0, 2) and allocation.used == pytest.approx(4.0)


def test_jobs_submitted_through_jaif_are_marked_accounted(session, compute, scheduler, world, transactions):
    from jaif.compute import service

    alice = world.user()
    lab = world.project(alice)
    grant(session, lab)
    job = service.submit_job(session=session, compute=compute, actor=alice, project_name=lab.name, partition="gpu",
                             gpus=1, time_min=10, script=b"echo\n")
    scheduler.finish(job.job_id, seconds=60, account=job.account)
    run_import(transactions, compute)
    session.refresh(job)
    assert job.accounted_at is not None


def test_overrun_goes_to_the_last_allocation_and_exhausts_it(session, compute, scheduler, world, transactions):
    lab = world.project(world.user())
    first, second = grant(session, lab, gpu_hours=1), grant(session, lab, gpu_hours=1)
    scheduler.finish("1", seconds=3 * 3600, gpus=1, account=project_account(lab.name))
    run_import(transactions, compute)
    assert (first.used, second.used) == (pytest.approx(1.0), pytest.approx(2.0))
    assert first.status == second.status == "exhausted"


def test_jobs_no_allocation_covers_are_recorded_uncharged(session, compute, scheduler, world, transactions):
    lab = world.project(world.user())
    scheduler.finish("1", seconds=3600, gpus=1, account=project_account(lab.name))
    result = run_import(transactions, compute)
    assert result.uncharged_gpu_hours == pytest.approx(1.0)
    assert session.scalar(select(JobRecord.allocation_id)) is None


def test_whole_node_sites_charge_every_gpu_of_the_node(session, compute, scheduler, world, transactions):
    compute.settings.compute.partitions = [PartitionProfile(name="gpu", charge="node", gpu_power_w=680)]
    lab = world.project(world.user())
    allocation = grant(session, lab, gpu_hours=100)
    scheduler.finish("1", seconds=3600, gpus=1, nodes=1, account=project_account(lab.name))
    run_import(transactions, compute)
    record = session.scalar(select(JobRecord))
    assert (record.gpu_hours, allocation.used) == (4.0, 4.0)
    assert record.energy_kwh == pytest.approx(4 * 0.68)


def test_an_interrupted_import_resumes_to_the_same_totals(session, compute, scheduler, world, transactions):
    compute.settings.compute.accounting_batch = 3
    lab = world.project(world.user())
    allocation = grant(session, lab, gpu_hours=1000)
    for i in range(10):
        scheduler.finish(str(i), seconds=600 * (i + 1), gpus=1 + i % 4, account=project_account(lab.name))
    expected = sum((600 * (i + 1)) * (1 + i % 4) / 3600 for i in range(10))
    calls = {"n": 0}

    @contextmanager
    def crashing():
        calls["n"] += 1
        if calls["n"] == 4:  # the set-up read, two batches committed, then the process dies
            raise KeyboardInterrupt
        with transactions() as s:
            yield s

    with pytest.raises(KeyboardInterrupt):
        run_import(crashing, compute)
    assert session.scalar(select(func.count()).select_from(JobRecord)) == 6
    result = run_import(transactions, compute)
    assert (result.imported, result.already) == (4, 6)
    total = session.scalar(select(func.sum(JobRecord.gpu_hours)))
    assert total == pytest.approx(expected) and allocation.used == pytest.approx(expected)
    assert session.scalar(select(func.count()).select_from(JobRecord)) == 10


def test_a_job_under_a_partition_the_scheduler_no_longer_reports(session, compute, scheduler, world, transactions):
    lab = world.project(world.user())
    grant(session, lab, partition="retired")
    scheduler.finish("1", seconds=3600, gpus=2, account=project_account(lab.name), partition="retired")
    run_import(transactions, compute)
    record = session.scalar(select(JobRecord))
    assert record.gpu_hours == 2.0 and record.energy_kwh == pytest.approx(1.4)  # the default profile
    used = session.scalar(select(Allocation.used).where(Allocation.project_id == lab.id))
    assert used == 2.0
    assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert JobState(record.state) == JobState.completed


def test_a_requeued_job_reported_again_with_a_later_end_is_not_charged_twice(
    session, compute, scheduler, world, transactions
):
    """The batch's window check misses a job recorded with another end time: the write collides (COPY on
    PostgreSQL), and the batch is written again with each id looked up."""
    lab = world.project(world.user())
    allocation = grant(session, lab, gpu_hours=100)
    account = project_account(lab.name)
    scheduler.finish("5", seconds=3600, gpus=1, account=account)
    run_import(transactions, compute)
    first = scheduler.entries.pop()
    scheduler.entries.append(dataclasses.replace(first, ended_at=first.ended_at + timedelta(hours=1)))
    scheduler.finish("6", seconds=1800, gpus=2, account=account)
    scheduler.entries[-1].ended_at += timedelta(hours=1)
    result = run_import(transactions, compute)
    assert (result.imported, result.already) == (1, 1)
    assert allocation.used == pytest.approx(2.0)
    assert session.scalar(select(func.count()).select_from(JobRecord)) == 2
