"""Jobs end to end through the `jaif` CLI, on the local executor and on a real Slurm (the same
behaviour where it applies): run, logs while running, charge what the scheduler accounts exactly once,
cancel, bad input refused with nothing submitted, an importer killed half-way, a project's file given to a
job (`--input`) and its output read back."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from jaif.access import service as access
from jaif.access.models import Project
from jaif.files import service as files
from jaif.files.store import FileStore
from tests.support.procs import JAIF, last_line


def test_a_job_runs_under_its_project_and_is_charged_once_what_the_scheduler_accounts(platform):
    project = platform.project(10)
    job_id = platform.submit(project, "echo started on $CUDA_VISIBLE_DEVICES\nsleep 4\necho done\n", gpus=2)
    assert job_id.isdigit()
    running = platform.wait(job_id, {"running", "completed"})
    if running["state"] == "running":  # stdout can be read while the job runs
        time.sleep(1)
        assert platform.jaif("job", "logs", job_id).stdout.startswith("started on 0,1")
    assert platform.jaif("job", "logs", job_id, "--follow").stdout == "started on 0,1\ndone\n"
    done = platform.wait(job_id, {"completed"})
    assert done["exit_code"] == 0 and done["account"] == project
    record = platform.scheduler_record(job_id)
    assert record["account"] == project and record["gpus"] == 2 and record["elapsed_s"] >= 4
    first = platform.json("accounting", "import")
    assert first["imported"] >= 1
    report = platform.json("report", "--project", project)
    gpu_hours = record["elapsed_s"] * 2 / 3600
    assert report["gpu_hours"] == pytest.approx(gpu_hours)
    assert report["energy_kwh"] == pytest.approx(gpu_hours * 0.7)  # the default 700 W per GPU, marked model
    assert report["energy_modelled_kwh"] == report["energy_kwh"]
    assert report["co2_kg"] == pytest.approx(gpu_hours * 0.7 * 0.38)
    assert platform.allocation_used(project) == pytest.approx(gpu_hours)
    again = platform.json("accounting", "import")
    assert again["imported"] == 0 and again["already"] >= 1
    assert platform.json("report", "--project", project)["gpu_hours"] == pytest.approx(gpu_hours)
    assert platform.allocation_used(project) == pytest.approx(gpu_hours)
    assert platform.show(job_id)["accounted"] is True


def test_a_cancelled_job_is_cancelled_in_the_scheduler(platform):
    project = platform.project(10)
    job_id = platform.submit(project, "sleep 120\n")
    platform.wait(job_id, {"running"})
    assert "cancel" in platform.jaif("job", "cancel", job_id).stdout
    assert platform.wait(job_id, {"cancelled"}, timeout=30)["state"] == "cancelled"
    assert platform.scheduler_record(job_id)["state"].lower() == "cancelled"


def test_bad_input_is_refused_with_a_clear_reason_and_nothing_submitted(platform):
    project = platform.project(10)
    with platform.session() as session:
        access.create_user(session=session, email=f"mallory-{project}@example.org")
    other = platform.project(10)
    script = platform.script("echo hi\n")
    binary = platform.tmp / "a.out"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00")
    base = ["job", "submit", "--project", project, "--partition", platform.partition, "--gpus", "1", "--time", "5"]
    cases = [
        (["--partition", "nope", "--script", script], "unknown partition 'nope'"),
        (["--gpus", str(platform.gpus_per_node + 1), "--script", script],
         f"has {platform.gpus_per_node} GPUs per node"),
        (["--time", str(platform.max_time + 1), "--script", script], f"allows at most {platform.max_time} minutes"),
        (["--script", str(binary)], "the script is not text"),
        (["--script", script, "--as", f"mallory-{project}@example.org"], "(or you are not a member of it)"),
        (["--time", "60", "--gpus", "4", "--nodes", "1", "--script", script], None),
    ]
    for extra, words in cases[:-1]:
        result = platform.jaif(*base, *extra, check=False)
        assert result.returncode == 1, (extra, result.stdout)
        assert words in result.stderr.replace("\n", " "), (extra, result.stderr)
    poor = platform.project(0.01)
    refused = platform.jaif("job", "submit", "--project", poor, "--partition", platform.partition, "--gpus", "1",
                            "--time", "5", "--script", script, check=False)
    assert refused.returncode == 1 and "could use 0.08 GPU-hours (5 min x 1 GPUs)" in refused.stderr
    none = platform.project(None)
    missing = platform.jaif("job", "submit", "--project", none, "--partition", platform.partition, "--gpus", "1",
                            "--time", "5", "--script", script, check=False)
    assert "has no GPU-hour allocation on partition" in missing.stderr
    for name in (project, other, poor, none):
        assert platform.json("job", "list", "--project", name) == []
    if platform.kind == "slurm":
        assert platform.slurm("squeue", "-h", f"--account={project},{poor}") == ""


def test_a_project_file_is_copied_into_the_job_and_its_output_read_back(platform):
    """Under Slurm too: the copy is made on the submit host into the job's directory on the shared file system."""
    project, other = platform.project(10), platform.project(10)
    source = platform.tmp / f"upload-{project}.part"
    source.write_text("from the project's files\n")
    with platform.session() as session:
        project_id = session.scalar(select(Project.id).where(Project.name == project))
        file_id = files.add_file(session=session, store=FileStore(platform.tmp / "var" / "files"), source=source,
                                 project_id=project_id, purpose="user_data", filename="in.txt").id
    script = platform.script("mkdir -p out\ntr a-z A-Z < in.txt > out/copy.txt\n")
    submit = ["job", "submit", "--partition", platform.partition, "--gpus", "1", "--time", "5", "--script", script,
              "--input", file_id]
    job_id = last_line(platform.jaif(*submit, "--project", project))
    platform.wait(job_id, {"completed"})
    shown = platform.json("job", "show", job_id)
    assert shown["state"] == "completed" and shown["inputs"] == [{"id": file_id, "name": "in.txt"}]
    assert (Path(shown["workdir"]) / "out" / "copy.txt").read_text() == "FROM THE PROJECT'S FILES\n"
    refused = platform.jaif(*submit, "--project", other, check=False)  # another project's file
    assert refused.returncode == 1 and f"no file '{file_id}' in project {other}" in refused.stderr
    assert platform.json("job", "list", "--project", other) == []


def test_killing_the_importer_half_way_gives_the_same_totals(platform):
    project = platform.project(100)
    ids = [platform.submit_here(project, "true\n", gpus=1 + i % 2, time_min=2) for i in range(8)]
    records = [platform.scheduler_record(i) for i in ids]
    expected = sum(r["elapsed_s"] * r["gpus"] for r in records) / 3600
    database = platform.env["JAIF_DATABASE_URL"].removeprefix("sqlite:///")
    before = _count(database)
    env = platform.env | {"JAIF_COMPUTE__ACCOUNTING_BATCH": "1"}
    proc = subprocess.Popen([JAIF, "accounting", "import"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while proc.poll() is None and _count(database) == before:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = _count(database) - before
    resumed = platform.json("accounting", "import")
    assert resumed["imported"] + half == len(ids) + _others(database, project, before)
    report = platform.json("report", "--project", project)
    assert report["jobs"] == len(ids)
    assert report["gpu_hours"] == pytest.approx(expected)
    assert platform.allocation_used(project) == pytest.approx(expected)
    assert platform.json("accounting", "import")["imported"] == 0


def _count(database: str) -> int:
    with sqlite3.connect(database, timeout=30) as conn:
        return conn.execute("select count(*) from compute_job_records").fetchone()[0]


def _others(database: str, project: str, before: int) -> int:
    """Records of other projects' jobs the two imports took (earlier tests' jobs, not yet imported)."""
    with sqlite3.connect(database, timeout=30) as conn:
        total = conn.execute("select count(*) from compute_job_records").fetchone()[0]
        mine = conn.execute(
            "select count(*) from compute_job_records r join projects p on p.id = r.project_id where p.name = ?",
            (project,),
        ).fetchone()[0]
    return total - before - mine


def test_templates_run(platform):
    project = platform.project(10)
    code = platform.tmp / "hello.py"
    code.write_text("import os, sys\nprint('hello', sys.argv[1:], os.environ.get('CUDA_VISIBLE_DEVICES'))\n")
    result = platform.jaif("job", "submit", "--project", project, "--partition", platform.partition, "--gpus", "1",
                           "--time", "5", "--template", "python", "--param", f"script={code}",
                           "--param", "args=--lr 0.1")
    job_id = last_line(result)
    platform.wait(job_id, {"completed"})
    assert "hello ['--lr', '0.1'] 0" in platform.jaif("job", "logs", job_id).stdout
