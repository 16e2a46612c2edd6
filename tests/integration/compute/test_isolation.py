"""A job is not the server (issue 9, item 1): jobs submitted through POST /api/v1/jobs by a project member
run on the real local executor as an unprivileged account of their project, with a clean environment,
unable to read the database, var/ or another project's output; their logs are read without following
links; where jaif cannot change user, local jobs are refused unless the single-user opt-in is set.

Each runs with bubblewrap (``sandbox=auto``, where it works here) and with the account and file
permissions alone (``sandbox=off``). The app's data lives under /var/tmp: pytest's own temporary
directories are root's alone (0700), which no job account may pass, as on a real server."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import make_url

from jaif.app import create_app
from jaif.config import Settings
from tests.integration.compute.conftest import grant, wait_state
from tests.support.services import Api

CANARY = "server-secret-canary-7f3a"


@pytest.fixture
def base_dir():
    path = Path(tempfile.mkdtemp(prefix="jaif-iso-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def make_api(factory, session, migrated_url, base_dir, monkeypatch):
    """An app (without its lifespan) whose compute settings the test picks; the server's environment
    holds a secret (as JAIF_* settings do) that no job may see."""
    monkeypatch.setenv("JAIF_TEST_CANARY", CANARY)
    session.commit()
    made = []

    def make(**compute) -> Api:
        settings = Settings(database_url=migrated_url, data_dir=base_dir / "var",
                            inference={"builtin_models": False}, compute=compute)
        app = create_app(settings)
        app.state.runtime = SimpleNamespace(session_factory=factory, settings=settings)
        client = Api(app, factory)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def _probe(db_file: str, data_dir: Path, other_log: str) -> str:
    return f"""
echo "uid=$(id -u)"
echo ENV-BEGIN; env; echo ENV-END
head -c 15 {db_file} 2>&1; echo
cat {data_dir}/secret_key 2>&1
ls {data_dir} 2>&1
cat {data_dir}/outbox/reset.eml 2>&1
cat {other_log} 2>&1
echo written > {data_dir}/written 2>&1
cat /proc/1/environ 2>&1 | tr '\\0' '\\n' | grep -c JAIF_ || true
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: jobs run as accounts jaif creates")
@pytest.mark.parametrize("sandbox", ["auto", "off"])
async def test_a_members_job_is_not_the_server(make_api, session, world, migrated_url, base_dir, sandbox):
    api = make_api(sandbox=sandbox)
    pi, member, rival = world.user("pi"), world.user("member"), world.user("rival")
    lab = world.project(member, pi=pi)  # the member is not PI
    other = world.project(rival)
    grant(session, lab, partition="local")
    grant(session, other, partition="local")
    session.commit()
    data_dir = base_dir / "var"
    data_dir.mkdir(exist_ok=True)
    (data_dir / "secret_key").write_text(CANARY)
    (data_dir / "secret_key").chmod(0o600)
    (data_dir / "outbox").mkdir(mode=0o755)  # e-mails with their one-time links, as jaif writes them
    (data_dir / "outbox" / "reset.eml").write_text(f"reset link {CANARY}")
    (data_dir / "outbox" / "reset.eml").chmod(0o644)
    url = make_url(migrated_url)
    db_file = url.database if url.get_backend_name() == "sqlite" else str(data_dir / "jaif.db")
    if url.get_backend_name() != "sqlite":  # a database file all the same, where jaif keeps it by default
        Path(db_file).write_bytes(b"SQLite format 3\x00" + CANARY.encode())
    as_member, as_rival = api.as_(member), api.as_(rival)

    theirs = await as_rival.post("/api/v1/jobs", json={
        "project": other.name, "partition": "local", "gpus": 0, "time": 5, "script": "echo rival-private-output"})
    assert theirs.status_code == 201, theirs.text
    theirs = await wait_state(as_rival, theirs.json()["job_id"], {"completed"}, timeout=30.0)
    other_log = str(Path(theirs["workdir"]) / "stdout.log")
    assert Path(other_log).read_text() == "rival-private-output\n"

    made = await as_member.post("/api/v1/jobs", json={
        "project": lab.name, "partition": "local", "gpus": 1, "time": 5,
        "script": _probe(db_file, data_dir, other_log)})
    assert made.status_code == 201, made.text
    job = await wait_state(as_member, made.json()["job_id"], {"completed", "failed"}, timeout=30.0)
    out = (await as_member.get(f"/api/v1/jobs/{job['job_id']}/logs")).json()["stdout"]

    uid = int(out.split("uid=", 1)[1].split()[0])
    account = pwd.getpwuid(uid).pw_name
    assert uid != 0 and uid != os.geteuid() and account.startswith("jaif-job-"), out
    assert job["run_as"] == account
    env = out.split("ENV-BEGIN\n", 1)[1].split("ENV-END", 1)[0].splitlines()
    names = {line.split("=", 1)[0] for line in env if "=" in line}
    assert {n for n in names if n.startswith("JAIF_")} == {"JAIF_JOB_ID"}, env
    assert CANARY not in out and migrated_url not in out
    assert {"PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES"} <= names
    assert "SQLite format 3" not in out  # the database file
    assert "rival-private-output" not in out  # another project's job output
    assert not (data_dir / "written").exists()
    assert "secret_key" not in out.split("ENV-END", 1)[1].splitlines()  # var/ cannot be listed either
    # a second job of another project's account cannot read this one's directory
    workdir = Path(job["workdir"])
    assert workdir.stat().st_uid == uid and workdir.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: jobs run as accounts jaif creates")
async def test_a_log_that_is_a_link_or_a_pipe_is_not_read(make_api, session, world):
    api = make_api()
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    session.commit()
    as_alice = api.as_(alice)
    script = "echo visible >&2\nrm -f stdout.log\nln -s /etc/shadow stdout.log\n"
    made = await as_alice.post("/api/v1/jobs", json={
        "project": lab.name, "partition": "local", "gpus": 0, "time": 5, "script": script})
    assert made.status_code == 201, made.text
    job = await wait_state(as_alice, made.json()["job_id"], {"completed"}, timeout=30.0)
    assert os.path.islink(Path(job["workdir"]) / "stdout.log")
    logs = (await as_alice.get(f"/api/v1/jobs/{job['job_id']}/logs")).json()
    assert logs["stdout"] == "" and "root:" not in logs["stdout"]
    assert logs["refused"] == ["stdout.log is not shown: it is not a regular file (too many levels of symbolic "
                               "links)"], logs
    assert logs["stderr"] == "visible\n"
    # a named pipe would block a reader forever: refused at once
    made = await as_alice.post("/api/v1/jobs", json={
        "project": lab.name, "partition": "local", "gpus": 0, "time": 5,
        "script": "rm -f stderr.log\nmkfifo stderr.log\n"})
    job = await wait_state(as_alice, made.json()["job_id"], {"completed"}, timeout=30.0)
    logs = (await asyncio.wait_for(as_alice.get(f"/api/v1/jobs/{job['job_id']}/logs"), 10)).json()
    assert logs["refused"] == ["stderr.log is not shown: it is not a regular file"], logs


async def test_local_jobs_are_refused_where_jaif_cannot_change_user(make_api, session, world, monkeypatch):
    monkeypatch.setattr("jaif.compute.isolation.can_drop_privileges", lambda: False)  # the detection only
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    session.commit()
    body = {"project": lab.name, "partition": "local", "gpus": 0, "time": 5, "script": "id"}
    refused = await make_api().as_(alice).post("/api/v1/jobs", json=body)
    assert refused.status_code == 503, refused.text
    message = refused.json()["error"]["message"]
    assert "local jobs are refused" in message and "JAIF_COMPUTE__LOCAL_SINGLE_USER=true" in message
    assert "database, secrets and var/" in message
    # the single-user opt-in never makes root run a job
    as_alice = make_api(local_single_user=True).as_(alice)
    second = await as_alice.post("/api/v1/jobs", json=body)
    if os.geteuid() == 0:
        assert second.status_code == 503 and "never run as root" in second.json()["error"]["message"]
    else:
        assert second.status_code == 201, second.text
    assert (await as_alice.get("/api/v1/jobs")).json() == ([] if os.geteuid() == 0 else [second.json()])
