"""The server's compute tick: job states refreshed, finished jobs imported and charged, Slurm synced."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import func, select

from jaif.compute import service, worker
from jaif.compute.models import JobRecord
from jaif.compute.naming import project_account
from tests.integration.compute.conftest import grant
from tests.support.sacctmgr import MemorySacctmgr


def test_a_tick_refreshes_imports_and_syncs(session, compute, scheduler, world):
    compute.accounts = MemorySacctmgr()
    alice = world.user()
    lab = world.project(alice)
    allocation = grant(session, lab, gpu_hours=10)
    job = service.submit_job(session=session, compute=compute, actor=alice, project_name=lab.name,
                             partition="gpu", gpus=2, time_min=30, script=b"echo\n")
    scheduler.finish(job.job_id, seconds=1800, gpus=2, account=job.account)

    @contextmanager
    def transactions():
        with session.begin_nested():
            yield session

    worker.tick(transactions, compute)
    session.refresh(job)
    assert job.state == "completed" and job.accounted_at is not None
    assert session.scalar(select(func.count()).select_from(JobRecord)) == 1
    assert allocation.used == 1.0
    assert compute.accounts.rows[(project_account(lab.name), "")][1] == "gres/gpu=600"
