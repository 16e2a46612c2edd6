"""Deployments whose replicas are real Slurm jobs on the test cluster (scripts/slurm), with llama-cpp-python's
server as the engine and one real `jaif serve` for the module (its controller's intervals shortened):

- a replica submitted to the project's Slurm account, ready once the engine listens on the node, serving
  /v1 through the openai SDK, and cancelled in Slurm after it drains;
- a replica whose engine process dies (killed: not a scancel) and one whose engine hangs (SIGSTOP: it
  fails its health checks), each replaced by a new replica;
- a replica's GPU-hours and energy charged to the project's allocation by the accounting import (sacct)
  after it is cancelled, and the deployment's report (`jaif report --deployment`) against the tokens
  it served.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from jaif.compute.models import Job, JobRecord
from jaif.compute.naming import project_account
from tests.support import deployments
from tests.support.procs import jaif, last_line, server, wait_for

pytestmark = pytest.mark.slurm

READY_S = 240.0  # a replica's job starts, imports llama_cpp and loads the model (a loaded 2-core machine)


@dataclass
class Served:
    slurm: object  # the compute tests' Platform on the Slurm test cluster
    env: dict[str, str]
    base: str
    project: str
    key: str


@pytest.fixture(scope="module")
def served(slurm) -> Iterator[Served]:
    """One project (10 GPU-hours, synced to Slurm), a key, and one `jaif serve` for the module's tests.
    Replicas outlive the server by design: every job of the project left at the end is cancelled."""
    project = slurm.project(10)
    env = slurm.env | {
        "JAIF_DEPLOYMENTS__INTERVAL_S": "0.5", "JAIF_DEPLOYMENTS__DRAIN_S": "1",
        "JAIF_DEPLOYMENTS__HEALTH_INTERVAL_S": "1", "JAIF_DEPLOYMENTS__HEALTH_FAILURES": "3",
        "JAIF_DEPLOYMENTS__PROBE_TIMEOUT_S": "3", "JAIF_SLURM__SYNC_INTERVAL_S": "0",
        "JAIF_METERING__FLUSH_INTERVAL_S": "0.2",
    }
    key = last_line(jaif(env, "key", "create", "--project", project))
    try:
        with server(env) as base:
            yield Served(slurm, env, base, project, key)
    finally:
        jobs = slurm.slurm("squeue", "-h", "-A", project_account(project), "-o", "%i").split()
        if jobs:
            slurm.slurm("scancel", *jobs)


def deploy(s: Served, name: str, *, gpus: int = 0) -> None:
    jaif(s.env, "deployment", "create", name, "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", s.slurm.partition, "--gpus-per-replica", str(gpus), "--min-replicas", "1",
         "--max-replicas", "1", "--walltime", "30", "--project", s.project)


def listed(s: Served) -> list[dict]:
    return deployments.listed(s.env["JAIF_DATABASE_URL"])


def replicas(s: Served, name: str, state: str) -> list[dict]:
    found = [d for d in listed(s) if d["name"] == name]
    return [r for r in found[0]["replicas"] if r["state"] == state] if found else []


def one_ready(s: Served, name: str, *, besides: str | None = None) -> dict:
    """The deployment's ready replica (once there is one other than the job ``besides``)."""
    ready = wait_for(lambda: [r for r in replicas(s, name, "ready") if r["job_id"] != besides], bool,
                     timeout=READY_S, every=1.0)
    assert len(ready) == 1, listed(s)
    return ready[0]


def chat(s: Served, model: str, *, retry_s: float = 0.0) -> openai.types.chat.ChatCompletion:
    """A chat completion through the gateway; retried for ``retry_s`` while the gateway's registry follows
    a new replica."""
    deadline = time.monotonic() + retry_s
    with openai.OpenAI(base_url=s.base + "/v1", api_key=s.key, max_retries=0, timeout=120) as client:
        while True:
            try:
                return client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=5)
            except openai.APIStatusError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def delete(s: Served, name: str) -> None:
    jaif(s.env, "deployment", "delete", name)
    wait_for(lambda: [d["name"] for d in listed(s)], lambda names: name not in names, timeout=60, every=0.5)


def engine_pid(job_id: str) -> int:
    """The replica's engine: the process of the Slurm job running llama_cpp.server (the batch script
    execs it). Read from /proc (the test runs as root, on the cluster's only host)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            if (f"SLURM_JOB_ID={job_id}".encode() in (proc / "environ").read_bytes().split(b"\0")
                    and b"llama_cpp.server" in (proc / "cmdline").read_bytes()):
                return int(proc.name)
    raise AssertionError(f"no engine process of job {job_id}")


def test_a_deployment_runs_its_replica_as_a_slurm_job(served):
    s = served
    deploy(s, "slurm-chat")
    ready = one_ready(s, "slurm-chat")
    job_id = ready["slurm_job_id"]
    assert job_id and job_id == ready["job_id"]
    state, account, node = s.slurm.slurm("squeue", "-h", "-j", job_id, "-o", "%T %a %N").split()
    assert (state, account) == ("RUNNING", project_account(s.project))
    with s.slurm.session() as session:  # the job's node by every name Slurm has for it; the replica named one
        hosts = session.scalar(select(Job.hosts).where(Job.job_id == job_id)).split()
    assert node in hosts and ready["node"] in hosts, (hosts, ready)
    reply = chat(s, "slurm-chat")
    assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1
    delete(s, "slurm-chat")
    record = s.slurm.scheduler_record(job_id, timeout=60)
    assert record["state"] == "CANCELLED" and record["account"] == project_account(s.project)


def test_a_replica_whose_engine_dies_is_replaced(served):
    s = served
    deploy(s, "crashing")
    first = one_ready(s, "crashing")
    os.kill(engine_pid(first["job_id"]), signal.SIGKILL)  # a crash: the job ends on its own, no scancel
    failed = wait_for(lambda: replicas(s, "crashing", "failed"), bool, timeout=60, every=0.5)
    assert [r["job_id"] for r in failed] == [first["job_id"]], listed(s)
    assert "its job ended: failed" in failed[0]["reason"], failed
    assert s.slurm.scheduler_record(first["job_id"], timeout=60)["state"] == "FAILED"
    second = one_ready(s, "crashing", besides=first["job_id"])
    assert second["job_id"] != first["job_id"]
    assert chat(s, "crashing", retry_s=30).choices[0].message.content
    delete(s, "crashing")


def test_a_replica_that_fails_its_health_checks_is_replaced(served):
    s = served
    deploy(s, "hanging")
    first = one_ready(s, "hanging")
    pid = engine_pid(first["job_id"])
    os.kill(pid, signal.SIGSTOP)  # the engine hangs: its port still accepts, nothing answers
    try:
        failed = wait_for(lambda: replicas(s, "hanging", "failed"), bool, timeout=90, every=0.5)
        assert [r["job_id"] for r in failed] == [first["job_id"]], listed(s)
        assert "health checks in a row" in failed[0]["reason"], failed
        # jaif cancelled its job (the state the scheduler records), and a new replica serves
        assert s.slurm.scheduler_record(first["job_id"], timeout=60)["state"] == "CANCELLED"
        second = one_ready(s, "hanging", besides=first["job_id"])
        assert second["job_id"] != first["job_id"]
        assert chat(s, "hanging", retry_s=30).choices[0].message.content
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # never leave a stopped process behind, whatever Slurm did
    delete(s, "hanging")


def test_a_replica_is_charged_through_the_accounting_import_and_reported(served):
    """One GPU per replica (the test cluster's fake GPUs): GPU-hours, and energy from the partition's
    power model (the test cluster records no ConsumedEnergy), charged to the project's allocation."""
    s = served
    deploy(s, "metered", gpus=1)
    first = one_ready(s, "metered")
    job_id = first["slurm_job_id"]
    reply = chat(s, "metered")
    used = s.slurm.allocation_used(s.project)
    s.slurm.slurm("scancel", job_id)  # the replica is cancelled (the controller replaces it)
    record = s.slurm.scheduler_record(job_id, timeout=60)
    assert (record["state"], record["gpus"], record["account"]) == ("CANCELLED", 1, project_account(s.project))
    wait_for(lambda: replicas(s, "metered", "failed"), bool, timeout=60, every=0.5)

    imported = json.loads(last_line(jaif(s.env, "accounting", "import", "--json")))
    assert imported["imported"] >= 1 and imported["uncharged_gpu_hours"] == 0, imported
    with s.slurm.session() as session:
        charged = session.scalar(select(JobRecord).where(JobRecord.job_id == job_id))
        assert charged is not None and charged.allocation_id is not None
        assert charged.gpus == 1 and charged.gpu_hours == pytest.approx(record["elapsed_s"] / 3600)
        assert charged.energy_source == "model" and charged.energy_kwh == pytest.approx(
            700 * record["elapsed_s"] / 3_600_000)  # the default power model: 700 W per GPU
        assert session.scalar(select(Job.accounted_at).where(Job.job_id == job_id)) is not None
        gpu_hours, kwh = charged.gpu_hours, charged.energy_kwh
    assert s.slurm.allocation_used(s.project) >= used + gpu_hours - 1e-9

    usage = wait_for(lambda: json.loads(last_line(jaif(s.env, "usage", "--project", s.project, "--json"))),
                     lambda u: any(m["model"] == "metered" for m in u["models"]))
    assert [m["total_tokens"] for m in usage["models"] if m["model"] == "metered"] == [reply.usage.total_tokens]
    r = json.loads(last_line(jaif(s.env, "report", "--deployment", "metered", "--json")))
    tokens = reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert (r["deployment"], r["model"], r["project"], r["replicas"]) == (
        "metered", "smollm2-135m-instruct", s.project, 1), r
    assert (r["gpu_hours"], r["energy_kwh"], r["tokens"]) == (
        float(f"{gpu_hours:.6g}"), float(f"{kwh:.6g}"), tokens), r
    assert r["kwh_per_1k_tokens"] == float(f"{kwh * 1000 / tokens:.6g}") and r["energy_modelled_kwh"] == r["energy_kwh"]
    text = jaif(s.env, "report", "--deployment", "metered").stdout
    assert "deployment metered" in text and f"GPU-hours: {r['gpu_hours']:g}" in text, text
    delete(s, "metered")


def served_models(s: Served) -> set[str]:
    with openai.OpenAI(base_url=s.base + "/v1", api_key=s.key, max_retries=0) as client:
        return {m.id for m in client.models.list()}


def events(s: Served, name: str) -> list[str]:
    shown = json.loads(last_line(jaif(s.env, "deployment", "show", name, "--json")))
    return [e["message"] for e in shown["events"]]


def test_from_zero_up_under_a_load_step_and_back_to_zero_without_a_failed_request(served):
    """min 0: no Slurm job until requests come. A step of three concurrent streams is held during the cold
    start, the autoscaler goes 0 -> 1 -> 2 Slurm jobs (one request in flight per replica is the target),
    every stream is answered; once idle, both replicas drain and their jobs leave Slurm's queue."""
    import concurrent.futures

    s = served
    jaif(s.env, "deployment", "create", "elastic", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", s.slurm.partition, "--min-replicas", "0", "--max-replicas", "2", "--target-inflight", "1",
         "--idle-minutes", "0.2", "--walltime", "30", "--project", s.project)
    time.sleep(2)  # several controller ticks: nothing is submitted without a request
    assert [d["replicas"] for d in listed(s) if d["name"] == "elastic"] == [[]]
    # The gateway serves a new deployment once its registry has read it (within inference.registry_refresh_s;
    # a loaded machine may take longer): until then the model is unknown to it, a 404.
    assert "elastic" in wait_for(lambda: served_models(s), lambda names: "elastic" in names, timeout=30, every=0.5)
    assert [d["replicas"] for d in listed(s) if d["name"] == "elastic"] == [[]]  # still nothing submitted

    def stream(_: int) -> str:
        with openai.OpenAI(base_url=s.base + "/v1", api_key=s.key, max_retries=0, timeout=READY_S + 60) as client:
            chunks = list(client.chat.completions.create(
                model="elastic", messages=[{"role": "user", "content": "Tell me about Jülich."}], max_tokens=48,
                stream=True))
        finished = [c.choices[0].finish_reason for c in chunks if c.choices]
        return "ok" if finished and finished[-1] else f"unfinished: {chunks}"

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(stream, range(3)))
    assert outcomes == ["ok"] * 3, outcomes
    said = events(s, "elastic")
    assert any(m.startswith("scale up 0 -> 1: ") for m in said), said
    assert any(m.startswith("scale up 1 -> 2: ") for m in said), said
    submitted = [m for m in said if m.startswith("submitted replica")]
    assert len(submitted) == 2, said
    ready = [r["slurm_job_id"] for d in listed(s) if d["name"] == "elastic" for r in d["replicas"] if r["ready_at"]]
    assert len(ready) >= 1 and all(ready), listed(s)  # Slurm jobs (the second may still be starting)
    # idle for 12 s: scaled to zero; every job of the deployment leaves Slurm's queue
    wait_for(lambda: [r for d in listed(s) if d["name"] == "elastic" for r in d["replicas"]
                      if r["state"] in ("pending", "starting", "ready", "draining")], lambda live: not live,
             timeout=READY_S, every=1.0)
    assert any(m.startswith("scale to zero 2 -> 0: ") or m.startswith("scale to zero 1 -> 0: ")
               for m in events(s, "elastic")), events(s, "elastic")
    jobs = [r["slurm_job_id"] for d in listed(s) if d["name"] == "elastic" for r in d["replicas"]]
    queued = s.slurm.slurm("squeue", "-h", "-o", "%i").split()
    assert jobs and not set(jobs) & set(queued), (jobs, queued)
    delete(s, "elastic")


def test_a_walltime_handover_of_a_slurm_replica_under_load_fails_no_request(served):
    """A replica with a 2-minute Slurm time limit is handed over (successor from 60 s before its end) while a
    client sends requests one after another: none fails, and the old job drains and is cancelled before
    Slurm would kill it."""
    s = served
    jaif(s.env, "deployment", "create", "brief", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", s.slurm.partition, "--walltime", "2", "--project", s.project)
    first = one_ready(s, "brief")
    outcomes: list[str] = []
    ended: list[dict] = []
    with openai.OpenAI(base_url=s.base + "/v1", api_key=s.key, max_retries=0, timeout=120) as client:
        deadline = time.monotonic() + 150 + READY_S
        while time.monotonic() < deadline and not ended:
            try:
                client.chat.completions.create(model="brief", max_tokens=3,
                                               messages=[{"role": "user", "content": "hi"}])
                outcomes.append("ok")
            except openai.APIError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
            ended = [r for r in replicas(s, "brief", "ended") if r["job_id"] == first["job_id"]]
    assert ended and ended[0]["reason"] == "drained", listed(s)
    now_ready = replicas(s, "brief", "ready")
    assert len(now_ready) == 1 and now_ready[0]["slurm_job_id"] != first["slurm_job_id"], listed(s)
    failed = [o for o in outcomes if o != "ok"]
    assert outcomes and failed == [], failed
    delete(s, "brief")


def test_a_request_held_by_a_server_without_the_controller_gets_a_slurm_replica(served):
    """Two servers on one database: the module's server runs the controller; a second one holds a request
    for a cold deployment, its load report makes the controller submit a Slurm job, and it is answered."""
    import httpx

    s = served
    assert wait_for(lambda: httpx.get(s.base + "/healthz", timeout=10).json()["deployments_controller"], bool,
                    timeout=15) is True
    jaif(s.env, "deployment", "create", "remote", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", s.slurm.partition, "--min-replicas", "0", "--max-replicas", "1", "--idle-minutes", "0.2",
         "--walltime", "30", "--project", s.project)
    with server(s.env) as other:
        assert httpx.get(other + "/healthz", timeout=10).json()["deployments_controller"] is False
        with openai.OpenAI(base_url=other + "/v1", api_key=s.key, max_retries=0, timeout=READY_S + 60) as client:
            reply = client.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=3)
        assert reply.choices[0].message.content
    jobs = [r["slurm_job_id"] for d in listed(s) if d["name"] == "remote" for r in d["replicas"]]
    assert jobs and all(jobs), listed(s)
    assert any(m.startswith("scale up 0 -> 1: ") for m in events(s, "remote"))
    delete(s, "remote")
