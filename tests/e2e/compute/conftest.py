"""Platforms for the compute tests: `jaif` processes on a fresh database, scheduling on the local
executor or on a real Slurm (scripts/slurm/cluster.py: started once per test session, when root, and
stopped by pid at the end; installed first where its packages are missing)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import jaif.db.models  # noqa: F401  (every table known to the mappers)
from jaif.access import service as access
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service as allocations
from jaif.compute import service as jobs
from jaif.compute import sync
from jaif.compute.backend import make_compute
from jaif.config import Settings
from jaif.db.engine import make_engine, make_session_factory, transaction
from tests.support.procs import base_env, jaif, last_line

ROOT = Path(__file__).parents[3]
SLURM_SCRIPTS = ROOT / "scripts" / "slurm"


def _cluster_module():
    spec = importlib.util.spec_from_file_location("jaif_test_slurm_cluster", SLURM_SCRIPTS / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def slurm_reason() -> str | None:
    """None when the Slurm test cluster can run here, else why the Slurm tests skip."""
    if os.geteuid() != 0:
        return "not root: the Slurm test cluster installs Debian packages and starts daemons as root"
    if not shutil.which("slurmctld"):
        subprocess.run([str(SLURM_SCRIPTS / "install.sh")], check=False)
    if not shutil.which("slurmctld"):
        return "Slurm is not installed and scripts/slurm/install.sh could not install it (see its output)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    reason = slurm_reason()
    if reason:
        pytest.skip(reason)
    module = _cluster_module()
    cluster = module.Cluster.private()  # its own state dir, ports and database: runs beside any other
    try:
        cluster.start(fresh=True)
        yield cluster
    finally:
        cluster.stop()
        cluster.destroy()


@dataclass
class Platform:
    kind: str  # local | slurm
    env: dict[str, str]
    partition: str
    gpus_per_node: int
    max_time: int
    cluster: object | None = None
    tmp: Path | None = None
    _factory: object | None = None

    def jaif(self, *args: str, check: bool = True):
        return jaif(self.env, *args, check=check)

    def json(self, *args: str):
        return json.loads(last_line(self.jaif(*args, "--json")))

    def settings(self) -> Settings:
        return Settings(
            database_url=self.env["JAIF_DATABASE_URL"], data_dir=self.env["JAIF_DATA_DIR"], scheduler=self.kind,
            inference={"builtin_models": False}, compute={"jobs_dir": self.env["JAIF_COMPUTE__JOBS_DIR"]},
            slurm={"conf": self.env.get("JAIF_SLURM__CONF")},
        )

    def session(self):
        """A transaction on the platform's database, for setting up and reading back (not what is tested)."""
        if self._factory is None:
            self._factory = make_session_factory(make_engine(self.env["JAIF_DATABASE_URL"]))
        return transaction(self._factory)

    def project(self, gpu_hours: float | None = 10.0) -> str:
        """A new organisation and project (with a GPU-hour allocation unless None), synced to Slurm; made
        in-process: the CLI's own forms are what the tests drive."""
        name = f"p{uuid.uuid4().hex[:8]}"
        with self.session() as session:
            access.create_organisation(session=session, name=f"Org {name}", sector="academia", country="DE")
            project = access.create_project(session=session, name=name, organisation=f"Org {name}")
            if gpu_hours is not None:
                allocations.allocate(session=session, project_id=project.id, resource="gpu_hours", amount=gpu_hours,
                                     partition=self.partition, days=30)
        if self.kind == "slurm" and gpu_hours is not None:
            with self.session() as session:
                result = sync.sync(session=session, compute=make_compute(self.settings()))
            assert not result.errors and not result.remaining, result.as_dict()
        return name

    def allocation_used(self, project: str) -> float:
        with self.session() as session:
            found = allocations.list_allocations(session=session, actor=CLI_ACTOR, project_name=project,
                                                 resource="gpu_hours")
            return sum(a.used for a in found)

    def script(self, text: str) -> str:
        path = self.tmp / f"job-{uuid.uuid4().hex[:8]}.sh"
        path.write_text(text)
        return str(path)

    def submit(self, project: str, script: str, *, gpus: int = 1, time_min: int = 5, nodes: int = 1,
               check: bool = True):
        result = self.jaif("job", "submit", "--project", project, "--partition", self.partition, "--gpus", str(gpus),
                           "--time", str(time_min), "--nodes", str(nodes), "--script", self.script(script),
                           check=check)
        return last_line(result) if check else result

    def submit_here(self, project: str, script: str, *, gpus: int = 1, time_min: int = 5) -> str:
        """Submit in-process, for tests about what comes after (the import)."""
        with self.session() as session:
            job = jobs.submit_job(session=session, compute=make_compute(self.settings()), actor=CLI_ACTOR,
                                  project_name=project, partition=self.partition, gpus=gpus, time_min=time_min,
                                  script=script)
            return job.job_id

    def show(self, job_id: str) -> dict:
        return self.json("job", "show", job_id)

    def wait(self, job_id: str, states: set[str], timeout: float = 60.0) -> dict:
        """Poll the scheduler itself until the job is in one of ``states``; then jaif's view of it."""
        deadline = time.monotonic() + timeout
        while self._scheduler_record(job_id)["state"].lower() not in states and time.monotonic() < deadline:
            time.sleep(0.2)
        job = self.show(job_id)
        assert job["state"] in states, job
        return job

    def slurm(self, *argv: str) -> str:
        return self.cluster.run(*argv)

    def scheduler_record(self, job_id: str, timeout: float = 20.0) -> dict:
        """The finished job as the scheduler itself accounts it (sacct; the local executor's state file)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self._scheduler_record(job_id)
            if record["state"] not in ("PENDING", "RUNNING", "COMPLETING", "pending", "running", ""):
                return record
            assert time.monotonic() < deadline, record
            time.sleep(0.3)

    def _scheduler_record(self, job_id: str) -> dict:
        if self.kind == "slurm":
            line = self.slurm("sacct", "-j", job_id, "-X", "-n", "-P",
                              "--format=State,ElapsedRaw,AllocTRES,Account,Partition")
            # slurmdbd can hold a finished job before the job's start message (no partition, named
            # "allocation"); windowed queries such as the import's leave it out until then (1-3 s here)
            if not line.strip():
                queued = self.slurm("squeue", "-h", "-j", job_id, "-o", "%T")
                return {"state": queued.strip() or ""}
            state, elapsed, tres, account, partition = line.strip().split("|")
            if not partition:
                return {"state": ""}  # not whole yet
            gpus = sum(int(v) for k, v in (i.split("=") for i in tres.split(",") if "=" in i) if k == "gres/gpu")
            return {"state": state.split()[0], "elapsed_s": int(elapsed), "gpus": gpus, "account": account}
        state = json.loads((self.tmp / "jobs" / ".local" / "jobs" / f"{job_id}.json").read_text())
        from datetime import datetime

        started, ended = state.get("started_at"), state.get("ended_at")
        elapsed = int((datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()) \
            if started and ended else 0
        return {"state": state["state"], "elapsed_s": elapsed, "gpus": state["gpus"], "account": state["account"]}


def _platform(kind: str, tmp: Path, cluster=None) -> Platform:
    env = base_env(
        JAIF_DATABASE_URL=f"sqlite:///{tmp / 'jaif.db'}", JAIF_DATA_DIR=str(tmp / "var"),
        JAIF_INFERENCE__BUILTIN_MODELS="false", JAIF_SCHEDULER=kind, JAIF_COMPUTE__JOBS_DIR=str(tmp / "jobs"),
    )
    if kind == "slurm":
        env["JAIF_SLURM__CONF"] = str(cluster.conf)
        platform = Platform(kind, env, cluster.partition, cluster.gpus, 120, cluster, tmp)
    else:
        platform = Platform(kind, env, "local", 4, 1440, None, tmp)
    platform.jaif("db", "upgrade")
    return platform


@contextmanager
def shared_tmp(kind: str) -> Iterator[Path]:
    """A directory the jobs' accounts may pass (0755, in /var/tmp), as users' files are on a real machine:
    pytest's own temporary directories are root's alone (0700), and jobs never run as root."""
    path = Path(tempfile.mkdtemp(prefix=f"jaif-compute-{kind}-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module", params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def platform(request) -> Iterator[Platform]:
    """A jaif on a fresh database per module and scheduler: the local executor, and the real Slurm."""
    cluster = request.getfixturevalue("slurm_cluster") if request.param == "slurm" else None
    with shared_tmp(request.param) as tmp:
        yield _platform(request.param, tmp, cluster)


@pytest.fixture(scope="module")
def slurm(slurm_cluster) -> Iterator[Platform]:
    """A jaif on a fresh database scheduling on the real Slurm (tests only Slurm has: accounts, limits)."""
    with shared_tmp("slurm") as tmp:
        yield _platform("slurm", tmp, slurm_cluster)
