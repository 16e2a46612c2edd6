"""What only a real Slurm has: accounts and associations made by `jaif slurm sync` exactly as planned
(a second sync changes nothing), GPU budgets that make Slurm hold jobs once an allocation runs out
while jaif refuses them itself, jobs over several nodes, and a member's jobs running as the member's own
Unix user (sbatch --uid)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from jaif.access import service as access
from jaif.access.schemas import Actor
from jaif.compute import accounting, sync
from jaif.compute import service as jobs
from jaif.compute.backend import make_compute
from jaif.compute.models import JobRecord
from jaif.compute.naming import org_account

pytestmark = pytest.mark.slurm


def associations(slurm, account: str) -> dict[str, str]:
    """user ("" for the account itself) -> "parent|GrpTRESMins" of ``account``'s associations."""
    out = slurm.slurm("sacctmgr", "-n", "-P", "show", "associations", f"account={account}",
                      "format=User,ParentName,GrpTRESMins")
    return {u: f"{p}|{limit}" for u, p, limit in (line.split("|") for line in out.splitlines())}


def test_sync_makes_exactly_what_it_planned_and_a_second_sync_changes_nothing(slurm):
    name = slurm.project(None)
    with slurm.session() as session:
        access.create_user(session=session, email=f"ada-{name}@example.org")
        access.add_member(session=session, project_name=name, email=f"ada-{name}@example.org")
        sync.set_username(session=session, email=f"ada-{name}@example.org", username=f"ada{name[1:7]}")
    slurm.jaif("allocation", "create", "--project", name, "--partition", "gpu", "--gpu-hours", "2.5", "--days", "30")
    org = org_account(f"Org {name}", "org_")
    plan = slurm.json("slurm", "sync", "--dry-run")
    assert f"add account {name} (project {name}) under {org}, GrpTRESMins=gres/gpu=150" in plan["changes"]
    assert f"add user ada{name[1:7]} to account {name}" in plan["changes"]
    assert associations(slurm, name) == {}  # a dry run changes nothing
    done = slurm.json("slurm", "sync")
    assert done["errors"] == [] and done["remaining"] == []
    assert set(plan["changes"]) <= set(done["changes"])
    assert associations(slurm, name) == {"": f"{org}|gres/gpu=150", "root": "|", f"ada{name[1:7]}": "|"}
    assert associations(slurm, org)[""] == "root|"
    again = slurm.json("slurm", "sync")
    assert again["commands"] == again["load"] == again["changes"] == [] and again["sacctmgr_processes"] == 1
    assert "Slurm matches jaif" in slurm.jaif("slurm", "sync").stdout


def test_an_allocation_that_runs_out_makes_slurm_hold_jobs_and_jaif_refuses(slurm):
    # 0.005 GPU-hours = 18 GPU-seconds; Slurm's limit rounds up to 1 GPU-minute
    name = slurm.project(0.005)
    assert associations(slurm, name)[""].endswith("|gres/gpu=1")
    refused = slurm.jaif("job", "submit", "--project", name, "--partition", "gpu", "--gpus", "1", "--time", "1",
                         "--script", slurm.script("true\n"), check=False)
    assert refused.returncode == 1 and "could use 0.02 GPU-hours (1 min x 1 GPUs)" in refused.stderr
    # A member's own sbatch, past jaif: Slurm admits it (1 GPU-minute fits) and it uses 20 GPU-seconds.
    direct = slurm.slurm("sbatch", "--parsable", f"--account={name}", "--gpus-per-node=1", "--time=1",
                         f"--chdir={slurm.tmp}", "--output=/dev/null", "--wrap", "sleep 20").strip()
    record = slurm.scheduler_record(direct, timeout=90)
    assert record["state"] == "COMPLETED" and record["elapsed_s"] >= 18
    imported = slurm.json("accounting", "import")
    assert imported["imported"] >= 1
    assert slurm.allocation_used(name) == pytest.approx(record["elapsed_s"] / 3600)
    (allocation,) = slurm.json("allocation", "list", "--project", name)
    assert allocation["status"] == "exhausted"
    blocked = slurm.json("slurm", "sync")
    assert f"{name} (project {name}): allocation exhausted, GrpTRESMins=gres/gpu=0" in blocked["blocked"]
    assert associations(slurm, name)[""].endswith("|gres/gpu=0")
    # Slurm now holds any GPU job of the account ...
    held = slurm.slurm("sbatch", "--parsable", f"--account={name}", "--gpus-per-node=1", "--time=1",
                       f"--chdir={slurm.tmp}", "--output=/dev/null", "--wrap", "true").strip()
    reason = ""
    for _ in range(50):
        state, reason = slurm.slurm("squeue", "-h", "-j", held, "-o", "%T|%r").strip().split("|")
        if reason == "AssocGrpGRESMinutes":
            break
        time.sleep(0.2)
    assert (state, reason) == ("PENDING", "AssocGrpGRESMinutes")
    slurm.slurm("scancel", held)
    # ... and jaif refuses with its own message, nothing submitted
    again = slurm.jaif("job", "submit", "--project", name, "--partition", "gpu", "--gpus", "1", "--time", "1",
                       "--script", slurm.script("true\n"), check=False)
    assert again.returncode == 1 and "is exhausted" in again.stderr and "nothing submitted" in again.stderr
    assert slurm.json("job", "list", "--project", name) == []


def test_an_import_right_after_jobs_end_charges_them(slurm):
    """Once `sacct -j` shows a job's whole record, the import charges it (a replica is cancelled and
    charged at once in tests/e2e/deployments/test_slurm.py). slurmdbd can hold a finished job for 1-3 s
    before its start message (no partition, named "allocation"); the import's windowed query leaves it out
    until then, and the next import, looking back from its newest record, picks it up."""
    name = slurm.project(10)
    submit = ["sbatch", "--parsable", f"--account={name}", "--gpus-per-node=1", "--time=2", f"--chdir={slurm.tmp}",
              "--output=/dev/null", "--wrap", "sleep 60"]
    for _ in range(3):  # one at a time: the gap varied from none to 3.5 s
        job_id = slurm.slurm(*submit).strip()
        deadline = time.monotonic() + 60
        while slurm.slurm("squeue", "-h", "-j", job_id, "-o", "%T").strip() != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)  # a second of use to charge
        slurm.slurm("scancel", job_id)
        record = slurm.scheduler_record(job_id)
        assert record["state"] == "CANCELLED" and record["elapsed_s"] >= 1
        used = slurm.allocation_used(name)
        result = accounting.import_accounting(session_factory=slurm.session, compute=make_compute(slurm.settings()))
        assert result.imported >= 1, (job_id, result)
        with slurm.session() as session:
            charged = session.scalar(select(JobRecord).where(JobRecord.job_id == job_id))
            assert charged is not None and charged.state == "cancelled" and charged.allocation_id is not None
        assert slurm.allocation_used(name) == pytest.approx(used + record["elapsed_s"] / 3600)


def test_a_job_over_two_nodes_is_charged_for_all_its_gpus(slurm):
    name = slurm.project(10)
    job_id = slurm.submit(name, "srun --ntasks-per-node=1 bash -c 'echo node $SLURM_NODEID gpus $CUDA_VISIBLE_DEVICES'"
                          "\nsleep 2\n", gpus=4, nodes=2)
    job = slurm.wait(job_id, {"completed"})
    assert (job["nodes"], job["gpus"]) == (2, 8)
    out = slurm.jaif("job", "logs", job_id).stdout
    assert sorted(out.split("\n")[:2]) == ["node 0 gpus 0,1,2,3", "node 1 gpus 0,1,2,3"]
    record = slurm.scheduler_record(job_id)
    assert record["gpus"] == 8
    slurm.json("accounting", "import")
    report = slurm.json("report", "--project", name)
    assert report["gpu_hours"] == pytest.approx(record["elapsed_s"] * 8 / 3600)


@pytest.fixture
def unix_user():
    """A Unix user made for the test (and removed after it): the member's own Slurm user name."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("submitting as another user needs root and useradd")
    name = f"jaift{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/bash", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def test_a_member_with_a_slurm_user_name_submits_as_that_user(slurm, unix_user):
    jobs_dir = Path(tempfile.mkdtemp(prefix="jaif-jobs-", dir="/var/tmp"))  # pytest's tmp is root's alone
    jobs_dir.chmod(0o755)
    platform = dataclasses.replace(slurm, env={**slurm.env, "JAIF_COMPUTE__JOBS_DIR": str(jobs_dir)})
    try:
        name = platform.project(10)
        email = f"{unix_user}@uni.example"
        with platform.session() as session:
            user, _ = access.create_user(session=session, email=email)
            access.add_member(session=session, project_name=name, email=email)
            sync.set_username(session=session, email=email, username=unix_user)
            actor = Actor(user_id=user.id, email=email, role="user")
        with platform.session() as session:
            result = sync.sync(session=session, compute=make_compute(platform.settings()))
        assert not result.errors and not result.remaining, result.as_dict()
        with platform.session() as session:
            job = jobs.submit_job(session=session, compute=make_compute(platform.settings()), actor=actor,
                                  project_name=name, partition=platform.partition, gpus=1, time_min=5,
                                  script="id -un\necho account $SLURM_JOB_ACCOUNT\nsleep 2\n")
            job_id, account, workdir = job.job_id, job.account, Path(job.workdir)
        queued = platform.slurm("squeue", "-h", "-j", job_id, "-o", "%u|%a")
        assert queued.strip() in ("", f"{unix_user}|{account}")  # "" once it has left the queue
        platform.wait(job_id, {"completed"})
        line = platform.slurm("sacct", "-j", job_id, "-X", "-n", "-P", "--format=User,Account,State").strip()
        assert line == f"{unix_user}|{account}|COMPLETED"
        assert (workdir / "stdout.log").read_text().splitlines()[:2] == [unix_user, f"account {account}"]
        assert (workdir / "stdout.log").owner() == unix_user
    finally:
        shutil.rmtree(jobs_dir, ignore_errors=True)


def test_a_slurm_job_gets_no_server_environment_and_its_linked_log_is_not_read(slurm, unix_user, monkeypatch):
    """Under Slurm "the job's account" is the user it runs as (the member's Slurm user name): its logs are
    shown only when they are regular files of that user, and sbatch hands it none of the server's
    environment."""
    monkeypatch.setenv("JAIF_TEST_CANARY", "server-secret-canary-5c1d")  # as the server's JAIF_* settings
    name = slurm.project(10)
    email = f"{unix_user}@uni.example"
    with slurm.session() as session:
        user, _ = access.create_user(session=session, email=email)
        access.add_member(session=session, project_name=name, email=email)
        sync.set_username(session=session, email=email, username=unix_user)
        actor = Actor(user_id=user.id, email=email, role="user")
    with slurm.session() as session:
        assert not sync.sync(session=session, compute=make_compute(slurm.settings())).errors
    with slurm.session() as session:
        job = jobs.submit_job(session=session, compute=make_compute(slurm.settings()), actor=actor,
                              project_name=name, partition=slurm.partition, gpus=1, time_min=5,
                              script="env >&2\necho shown\nrm -f stdout.log\nln -s /etc/shadow stdout.log\n")
        job_id, workdir = job.job_id, Path(job.workdir)
    slurm.wait(job_id, {"completed"})
    assert (workdir / "stdout.log").is_symlink()
    with slurm.session() as session:
        logs = jobs.job_logs(session=session, compute=make_compute(slurm.settings()), actor=actor, job_id=job_id)
    assert logs.stdout == "" and logs.refused == [
        "stdout.log is not shown: it is not a regular file (too many levels of symbolic links)"]
    assert "SLURM_JOB_ID=" in logs.stderr and "server-secret-canary-5c1d" not in logs.stderr
    assert not [line for line in logs.stderr.splitlines() if line.startswith("JAIF_")]
    shown = slurm.jaif("job", "logs", job_id)
    assert "root:" not in shown.stdout and "stdout.log is not shown" in shown.stderr
