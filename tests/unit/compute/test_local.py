"""The local executor with real processes: GPU slots, time limits, cancel, logs, accounting. Each job runs
as the project's own account, as the service would give it its directory (isolation.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jaif.compute.isolation import Isolation
from jaif.compute.local import LocalScheduler
from jaif.compute.models import JobState
from jaif.compute.scheduler import JobRequest
from jaif.config import ComputeSettings


@pytest.fixture
def local(tmp_path: Path) -> LocalScheduler:
    settings = ComputeSettings(local_single_user=os.geteuid() != 0)  # as root: the project's own account
    isolation = Isolation(settings, data_dir=tmp_path / "var", jobs_dir=tmp_path)
    return LocalScheduler(tmp_path / ".local", gpus=2, isolation=isolation, minute_s=1.0)  # a "minute" is 1 s


def job(local: LocalScheduler, tmp_path: Path, script: str, *, gpus: int = 1, minutes: int = 30,
        name: str = "j") -> JobRequest:
    plan = local.isolation.plan("lab")
    workdir = tmp_path / name
    workdir.mkdir(mode=0o700)
    (workdir / "job.sh").write_text("#!/bin/bash\n" + script)
    for path in (workdir, workdir / "job.sh"):
        os.chown(path, plan.uid, plan.gid)
    return JobRequest(name=name, account="lab", partition="local", nodes=1, gpus_per_node=gpus,
                      time_limit_min=minutes, script=workdir / "job.sh", workdir=workdir, isolation=plan)


def wait(local: LocalScheduler, job_id: str, states: set[JobState], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = local.status([job_id])[job_id]
        if status.state in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {status.state}, not {states}")


def test_a_job_runs_with_its_slots_in_its_directory(local, tmp_path):
    request = job(local, tmp_path, 'echo "gpus=$CUDA_VISIBLE_DEVICES in $PWD"; echo bad >&2; exit 3', gpus=2)
    job_id = local.submit(request)
    assert job_id == "1"
    status = wait(local, job_id, {JobState.failed})
    assert status.exit_code == 3 and status.started_at and status.ended_at
    assert request.stdout.read_text() == f"gpus=0,1 in {request.workdir}\n"
    assert request.stderr.read_text() == "bad\n"
    assert local.submit(job(local, tmp_path, "true", name="k")) == "2"


def test_a_job_waits_for_free_slots(local, tmp_path):
    first = local.submit(job(local, tmp_path, "sleep 1.5", gpus=2, name="a"))
    wait(local, first, {JobState.running})
    second = local.submit(job(local, tmp_path, "echo $CUDA_VISIBLE_DEVICES", gpus=1, name="b"))
    time.sleep(0.5)
    assert local.status([second])[second].state == JobState.pending
    assert local.status([second])[second].reason == "Resources"
    wait(local, second, {JobState.completed})
    assert wait(local, first, {JobState.completed}).ended_at <= local.status([second])[second].started_at


def test_time_limit_and_cancel(local, tmp_path):
    slow = local.submit(job(local, tmp_path, "sleep 30", minutes=1, name="slow"))  # a 1 s "minute"
    assert wait(local, slow, {JobState.timeout}).state == JobState.timeout
    running = local.submit(job(local, tmp_path, "sleep 30", name="run"))
    wait(local, running, {JobState.running})
    local.cancel(running)
    assert local.status([running])[running].state == JobState.cancelled
    blocker = local.submit(job(local, tmp_path, "sleep 30", gpus=2, name="block"))
    wait(local, blocker, {JobState.running})
    pending = local.submit(job(local, tmp_path, "echo never", name="pend"))
    local.cancel(pending)
    assert wait(local, pending, {JobState.cancelled}).started_at is None
    local.cancel(blocker)


def test_a_job_whose_supervisor_died_is_failed(local, tmp_path):
    job_id = local.submit(job(local, tmp_path, "sleep 30", name="orphan"))
    wait(local, job_id, {JobState.running})
    state = json.loads((local.root / "jobs" / f"{job_id}.json").read_text())
    os.kill(state["supervisor"], signal.SIGKILL)
    os.killpg(state["pid"], signal.SIGKILL)
    status = wait(local, job_id, {JobState.failed})
    assert status.reason == "the local executor stopped"


def test_accounting_lists_finished_jobs(local, tmp_path):
    done = local.submit(job(local, tmp_path, "sleep 1", gpus=2, name="done"))
    wait(local, done, {JobState.completed})
    running = local.submit(job(local, tmp_path, "sleep 30", name="still"))
    wait(local, running, {JobState.running})
    entries = list(local.accounting(since=datetime.now(UTC) - timedelta(hours=1)))
    assert [e.job_id for e in entries] == [done]
    entry = entries[0]
    assert (entry.account, entry.partition, entry.gpus, entry.nodes, entry.cluster) == ("lab", "local", 2, 1, "local")
    assert entry.elapsed_s >= 1 and entry.state == JobState.completed
    assert list(local.accounting(since=datetime.now(UTC) + timedelta(hours=1))) == []
    local.cancel(running)
