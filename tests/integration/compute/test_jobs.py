"""Submitting jobs: validated against the partition and the allocation, refused with a clear reason and
nothing submitted; list, show, cancel and logs."""

from __future__ import annotations

import os
import pwd
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jaif import served
from jaif.access import service as access
from jaif.access.models import ApiKey
from jaif.compute import service
from jaif.compute.models import JobState, SlurmUser
from jaif.compute.naming import project_account
from jaif.compute.scheduler import JobStatus, PartitionInfo
from jaif.config import PartitionProfile
from jaif.errors import Forbidden, InvalidRequest, NotFound, QuotaExceeded, Unauthorized
from jaif.files import service as files
from jaif.files.store import FileStore
from jaif.identity import team
from tests.integration.compute.conftest import grant

SCRIPT = b"#!/bin/bash\necho hello\n"


def submit(session, compute, actor, project, **kw):
    args = {"partition": "gpu", "gpus": 1, "time_min": 10, "script": SCRIPT} | kw
    return service.submit_job(session=session, compute=compute, actor=actor, project_name=project.name, **args)


def test_a_member_submits_a_script_under_the_project_account(session, compute, scheduler, world):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    job = submit(session, compute, alice, lab, gpus=2, time_min=30, script=b"echo no shebang\n")
    assert job.job_id == "100" and job.state == "pending" and job.charged_gpus == 2
    (request,) = scheduler.submitted
    assert (request.account, request.partition, request.gpus_per_node, request.nodes) == (
        project_account(lab.name), "gpu", 2, 1)
    assert request.time_limit_min == 30 and request.run_as == "nobody"
    assert request.script.read_text() == "#!/bin/bash\necho no shebang\n"
    assert request.workdir == Path(job.workdir) and request.workdir.is_relative_to(compute.jobs_dir)
    shown = service.get_job(session=session, compute=compute, actor=alice, job_id="100")
    assert shown.id == job.id and shown.reason == "Priority"  # refreshed from the scheduler


BAD = [
    ({"partition": "nope"}, InvalidRequest, "unknown partition 'nope'; partitions: gpu"),
    ({"gpus": 5}, InvalidRequest, "partition gpu has 4 GPUs per node; 5 asked for"),
    ({"nodes": 3}, InvalidRequest, "partition gpu has 2 nodes; 3 asked for"),
    ({"time_min": 121}, InvalidRequest, "partition gpu allows at most 120 minutes; 121 asked for"),
    ({"script": b"\x7fELF\x02\x01\x01\x00\x00\x00"}, InvalidRequest, "the script is not text"),
    ({"script": b"\xff\xfe\xfa"}, InvalidRequest, "the script is not text"),
    ({"script": b"   \n"}, InvalidRequest, "the script is not text"),
    ({"script": None}, InvalidRequest, "give a template"),
    ({"template": "python", "params": {"script": "a.py"}}, InvalidRequest, "give a template"),
    ({"script": None, "template": "python"}, InvalidRequest, "needs --param script="),
    ({"script": b"x" * 2_000_000}, InvalidRequest, "at most 1000000 are accepted"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD, ids=[m for _c, _e, m in BAD])
def test_bad_input_is_refused_and_nothing_submitted(session, compute, scheduler, world, change, error, message):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    with pytest.raises(error, match=message):
        submit(session, compute, alice, lab, **change)
    assert scheduler.submitted == []
    assert not list(compute.jobs_dir.rglob("job.sh")) if compute.jobs_dir.exists() else True


def test_someone_elses_project_does_not_exist_for_you(session, compute, scheduler, world):
    alice, mallory = world.user("alice"), world.user("mallory")
    lab = world.project(alice)
    grant(session, lab)
    with pytest.raises(NotFound, match=f"no project '{lab.name}' \\(or you are not a member of it\\)"):
        submit(session, compute, mallory, lab)
    assert scheduler.submitted == []


def test_allocation_missing_expired_revoked_or_on_another_partition(session, compute, scheduler, world):
    alice = world.user("alice")
    lab = world.project(alice)
    with pytest.raises(Forbidden, match="has no GPU-hour allocation on partition gpu"):
        submit(session, compute, alice, lab)
    grant(session, lab, partition="booster")
    with pytest.raises(Forbidden, match="has no GPU-hour allocation on partition gpu"):
        submit(session, compute, alice, lab)
    old = grant(session, lab, starts_at=datetime.now(UTC) - timedelta(days=10), days=2)
    with pytest.raises(Forbidden, match=f"allocation on partition gpu expired on {old.ends_at:%Y-%m-%d}"):
        submit(session, compute, alice, lab)
    late = grant(session, lab, starts_at=datetime.now(UTC) + timedelta(days=3), days=2)
    with pytest.raises(Forbidden, match=f"starts on {late.starts_at:%Y-%m-%d}"):
        submit(session, compute, alice, lab)
    late.status, late.revoked_at = "revoked", datetime.now(UTC)
    with pytest.raises(Forbidden, match="was revoked on"):
        submit(session, compute, alice, lab)
    assert scheduler.submitted == []


def test_exhausted_allocation(session, compute, scheduler, world):
    alice = world.user("alice")
    lab = world.project(alice)
    allocation = grant(session, lab, gpu_hours=2)
    allocation.used = 2.0
    with pytest.raises(QuotaExceeded, match="is exhausted: 2.00 of 2 GPU-hours used"):
        submit(session, compute, alice, lab)
    assert scheduler.submitted == []


def test_time_limit_times_gpus_must_fit_what_is_left_after_unfinished_jobs(session, compute, scheduler, world):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, gpu_hours=1)
    with pytest.raises(QuotaExceeded, match=r"could use 2.00 GPU-hours \(60 min x 2 GPUs\) but project .* has 1.00"):
        submit(session, compute, alice, lab, gpus=2, time_min=60)
    submit(session, compute, alice, lab, gpus=1, time_min=40)  # holds 0.67 GPU-hours while it waits
    with pytest.raises(QuotaExceeded, match="0.33 left .*0.67 of them held by its unfinished jobs"):
        submit(session, compute, alice, lab, gpus=1, time_min=30)
    # once it ran 6 minutes and ended, only what it used is held until the import charges it
    scheduler.finish("100", seconds=360)
    submit(session, compute, alice, lab, gpus=1, time_min=30)
    assert len(scheduler.submitted) == 2


def test_whole_node_charging_counts_every_gpu_of_the_node(session, compute, scheduler, world):
    compute.settings.compute.partitions = [PartitionProfile(name="gpu", charge="node")]
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, gpu_hours=1)
    with pytest.raises(QuotaExceeded, match=r"\(60 min x 4 GPUs\)"):
        submit(session, compute, alice, lab, gpus=1, time_min=60)
    job = submit(session, compute, alice, lab, gpus=1, time_min=15)
    assert job.charged_gpus == 4


def test_templates_and_the_batch_inference_credential(session, compute, scheduler, world):
    """A member's batch-inference job gets a credential of its own in its environment: no project key,
    no file, listed nowhere, working while the job lives and revoked when it ends."""
    pi, alice = world.user("pi"), world.user("alice")
    lab = world.project(alice, pi=pi)
    grant(session, lab)
    job = submit(session, compute, alice, lab, script=None, template="python", params={"script": "train.py"})
    assert "exec python3 train.py" in scheduler.submitted[0].script.read_text()
    assert job.template == "python" and job.params == {"script": "train.py"}
    assert scheduler.submitted[0].environment == {}  # only jobs that call the gateway get a credential
    before = access.list_api_keys(session=session, project_name=lab.name)
    started = datetime.now(UTC)
    served.record(compute.settings, host="127.0.0.1", port=8766)
    source = compute.settings.files_dir / "upload.part"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b'{"prompt": "hi"}\n')
    row = files.add_file(session=session, store=FileStore(compute.settings.files_dir), source=source,
                         project_id=lab.id, purpose="user_data", filename="in.jsonl")
    job = submit(session, compute, alice, lab, script=None, template="batch-inference", params={"input": row.id},
                 time_min=30)
    request = scheduler.submitted[1]
    # the project's file, copied into the job's directory as its account's; the script reads the copy
    copy = request.workdir / "in.jsonl"
    assert copy.read_bytes() == b'{"prompt": "hi"}\n' and copy.stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        assert copy.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert "exec python3 - in.jsonl results.jsonl" in request.script.read_text()
    assert job.params == {"input": row.id} and job.inputs == [{"id": row.id, "name": "in.jsonl"}]
    secret = request.environment["OPENAI_API_KEY"]
    # The address `jaif serve` recorded (data_dir/served_url), not this process's default port 8000: a job
    # submitted from the command line calls the server where it really listens (issue 14, item 2).
    assert request.environment["OPENAI_BASE_URL"] == "http://127.0.0.1:8766/v1"
    assert secret not in request.script.read_text() and "OPENAI_API_KEY" in request.script.read_text()
    assert sorted(p.name for p in request.workdir.iterdir()) == ["in.jsonl", "job.sh"]  # no secret in a file
    # listed nowhere as a project key, and not a key PIs could manage
    assert access.list_api_keys(session=session, project_name=lab.name) == before
    assert team.list_keys(session=session, actor=pi, project_id=lab.id) == before
    row = session.query(ApiKey).filter_by(job_id=job.id).one()
    with pytest.raises(NotFound):
        team.revoke_key(session=session, actor=pi, project_id=lab.id, key_id=row.id)
    principal = access.authenticate_key(session=session, secret=secret)
    assert principal.project_id == lab.id and principal.user_id == alice.user_id  # charged to the project
    limit = started + timedelta(minutes=30 + compute.settings.compute.job_key_margin_min)
    assert limit - timedelta(seconds=5) <= principal.expires_at <= limit + timedelta(seconds=5)
    # still queued later: its key lasts its whole time limit from now on
    service.refresh_jobs(session=session, compute=compute, jobs=[job])
    assert access.authenticate_key(session=session, secret=secret).expires_at >= principal.expires_at
    # it ends: the key dies with it
    scheduler.states[job.job_id] = JobStatus(job.job_id, JobState.completed, ended_at=datetime.now(UTC))
    service.refresh_jobs(session=session, compute=compute, jobs=[job])
    with pytest.raises(Unauthorized, match="revoked"):
        access.authenticate_key(session=session, secret=secret)


def test_jobs_never_run_as_root_for_ordinary_users(session, compute, scheduler, world):
    compute.settings.slurm.submit_user = "root"
    alice, op = world.user("alice"), world.operator()
    lab = world.project(alice)
    grant(session, lab)
    with pytest.raises(Forbidden, match="would run as root"):
        submit(session, compute, alice, lab)
    assert submit(session, compute, op, lab).run_as == "root"  # operators may
    session.add(SlurmUser(user_id=alice.user_id, username="nobody"))
    session.flush()
    assert submit(session, compute, alice, lab).run_as == "nobody"


def test_list_show_cancel_and_logs(session, compute, scheduler, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab, other = world.project(alice), world.project(bob)
    grant(session, lab)
    grant(session, other)
    mine = submit(session, compute, alice, lab)
    submit(session, compute, bob, other)
    listed = service.list_jobs(session=session, compute=compute, actor=alice)
    assert [j.job_id for j in listed] == [mine.job_id]
    with pytest.raises(NotFound):
        service.get_job(session=session, compute=compute, actor=alice, job_id="101")
    with pytest.raises(NotFound):
        service.cancel_job(session=session, compute=compute, actor=alice, job_id="101")
    log = Path(mine.workdir, "stdout.log")
    log.write_text("step 1\nstep 2\n")
    if os.geteuid() == 0:  # a file the job's account (nobody) did not write is not its log
        assert service.job_logs(session=session, compute=compute, actor=alice, job_id=mine.job_id).refused == [
            "stdout.log is not shown: it is not owned by the job's account"]
        os.chown(log, pwd.getpwnam("nobody").pw_uid, -1)  # as the job, running as nobody, writes it
    logs = service.job_logs(session=session, compute=compute, actor=alice, job_id=mine.job_id)
    assert (logs.stdout, logs.stderr, logs.stdout_offset, logs.refused) == ("step 1\nstep 2\n", "", 14, [])
    with open(Path(mine.workdir, "stdout.log"), "a") as f:
        f.write("step 3\n")
    more = service.job_logs(session=session, compute=compute, actor=alice, job_id=mine.job_id, stdout_offset=14)
    assert more.stdout == "step 3\n"
    cancelled = service.cancel_job(session=session, compute=compute, actor=alice, job_id=mine.job_id)
    assert scheduler.cancelled == [mine.job_id] and cancelled.state == JobState.cancelled


def test_partitions_come_from_the_scheduler(session, compute, scheduler, world):
    scheduler.reported = [PartitionInfo("gpu", 2, 4, 8, 16384, 120), PartitionInfo("big", 8, 8, 8, 16384, None)]
    assert sorted(compute.partitions()) == ["big", "gpu"]
    assert compute.partitions()["big"].max_walltime_min is None


def test_a_finished_job_leaves_a_notice_in_its_submitters_portal_once(session, compute, scheduler, world):
    from sqlalchemy import select

    from jaif.access.models import User
    from jaif.notify.models import Notification

    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    job = submit(session, compute, alice, lab)
    scheduler.states[job.job_id] = JobStatus(job.job_id, JobState.running, started_at=datetime.now(UTC))
    service.refresh_jobs(session=session, compute=compute, jobs=[job])
    email = session.get(User, alice.user_id).email
    notices = lambda: list(session.scalars(select(Notification).where(Notification.to_email == email)))  # noqa: E731
    assert notices() == []  # running is no news
    scheduler.states[job.job_id] = JobStatus(job.job_id, JobState.failed, ended_at=datetime.now(UTC), exit_code=3)
    service.refresh_jobs(session=session, compute=compute, jobs=[job])
    service.refresh_jobs(session=session, compute=compute, jobs=[job])
    [notice] = notices()
    assert notice.transport == "portal" and notice.read_at is None
    assert notice.subject == f"Job {job.job_id} ({job.name}) ended: failed" and "exit code 3" in notice.body
