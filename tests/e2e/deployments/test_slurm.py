"""A deployment whose replica is a real Slurm job on the test cluster (scripts/slurm): submitted by the
controller of a real `jaif serve` to the project's Slurm account, ready once llama-cpp-python's server
listens on the node, serving /v1 through the openai SDK, and cancelled in Slurm after it drains."""

from __future__ import annotations

import json
from contextlib import contextmanager

import openai
import pytest

from tests.support.procs import jaif, last_line, server, wait_for

pytestmark = pytest.mark.slurm


@contextmanager
def cancelled_at_end(slurm):
    """Replicas outlive the server by design: a failed test leaves none of its jobs behind."""
    try:
        yield
    finally:
        jobs = slurm.slurm("squeue", "-h", "-n", "deployment-slurm-chat", "-o", "%i").split()
        if jobs:
            slurm.slurm("scancel", *jobs)


def test_a_deployment_runs_its_replica_as_a_slurm_job(slurm):
    project = slurm.project(10)
    env = slurm.env | {"JAIF_DEPLOYMENTS__INTERVAL_S": "0.5", "JAIF_DEPLOYMENTS__DRAIN_S": "1",
                       "JAIF_SLURM__SYNC_INTERVAL_S": "0"}
    key = last_line(jaif(env, "key", "create", "--project", project))
    jaif(env, "deployment", "create", "slurm-chat", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", slurm.partition, "--gpus-per-replica", "0", "--min-replicas", "1", "--max-replicas", "1",
         "--walltime", "30", "--project", project)

    def replicas(state):
        listed = json.loads(last_line(jaif(env, "deployment", "list", "--json")))
        return [r for d in listed for r in d["replicas"] if r["state"] == state]

    with server(env) as base, cancelled_at_end(slurm):
        ready = wait_for(lambda: replicas("ready"), bool, timeout=240, every=1.0)
        assert len(ready) == 1, json.loads(last_line(jaif(env, "deployment", "list", "--json")))
        job_id = ready[0]["slurm_job_id"]
        assert job_id and job_id == ready[0]["job_id"]
        assert slurm.slurm("squeue", "-h", "-j", job_id, "-o", "%T %a").split() == ["RUNNING", project]
        with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120) as client:
            reply = client.chat.completions.create(
                model="slurm-chat", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5)
        assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1
        jaif(env, "deployment", "delete", "slurm-chat")
        wait_for(lambda: json.loads(last_line(jaif(env, "deployment", "list", "--json"))), lambda d: d == [],
                 timeout=60, every=0.5)
        record = slurm.scheduler_record(job_id, timeout=60)
        assert record["state"] == "CANCELLED" and record["account"] == project
