"""Parsing Slurm's machine-readable output into typed values (the formats of Slurm 22.05)."""

from __future__ import annotations

from datetime import UTC, datetime

from jaif.compute.models import JobState
from jaif.compute.slurm import _minutes, gpus_of, job_nodes, job_state, node_hosts, parse_sacct, slurm_time

# sacct -a -n -P --format=JobIDRaw,JobName,User,Account,Partition,State,Submit,Start,End,ElapsedRaw,AllocTRES,
#   NNodes,ConsumedEnergyRaw,Cluster  (as the test cluster prints it)
# ruff: noqa: E501 (the lines as sacct prints them)
SACCT = """\
16|demo|alice|proj|gpu|COMPLETED|2026-11-24T10:00:00|2026-11-24T10:00:01|2026-11-24T10:00:07|6|billing=1,cpu=1,gres/gpu=2,mem=256M,node=1|1||jaiftest
16.batch|batch||proj||COMPLETED|2026-11-24T10:00:01|2026-11-24T10:00:01|2026-11-24T10:00:07|6|cpu=1,gres/gpu=2,mem=256M,node=1|1|0|jaiftest
17|wide|bob|proj|gpu|CANCELLED by 0|2026-11-24T10:01:00|2026-11-24T10:01:00|2026-11-24T10:02:00|60|billing=2,cpu=2,gres/gpu=8,mem=512M,node=2|2|7200|jaiftest
18|waiting|bob|proj|gpu|PENDING|2026-11-24T10:03:00|Unknown|Unknown|0||1||jaiftest
19|measured|carol|proj|gpu|TIMEOUT|2026-11-24T10:04:00|2026-11-24T10:04:00|2026-11-24T10:05:00|60|cpu=1,gres/gpu:h100=4,node=1|1||jaiftest
19.batch|batch||proj||CANCELLED|2026-11-24T10:04:00|2026-11-24T10:04:00|2026-11-24T10:05:00|60|cpu=1,node=1|1|3000|jaiftest
19.0|python||proj||CANCELLED|2026-11-24T10:04:00|2026-11-24T10:04:00|2026-11-24T10:05:00|60|cpu=1,node=1|1|1000|jaiftest
"""


def test_finished_allocation_lines_become_entries_with_step_energy():
    entries = {e.job_id: e for e in parse_sacct(SACCT.splitlines())}
    assert sorted(entries) == ["16", "17", "19"]  # 18 has not finished
    done = entries["16"]
    assert (done.user, done.account, done.partition, done.state) == ("alice", "proj", "gpu", JobState.completed)
    assert (done.elapsed_s, done.gpus, done.nodes, done.consumed_energy_j) == (6, 2, 1, None)
    assert done.ended_at == datetime(2026, 11, 24, 10, 0, 7).astimezone(UTC)
    assert entries["17"].state == JobState.cancelled and entries["17"].consumed_energy_j == 7200
    assert entries["19"].state == JobState.timeout and entries["19"].gpus == 4
    assert entries["19"].consumed_energy_j == 4000  # the steps' energy, the allocation line has none


def test_states_tres_and_times():
    assert job_state("CANCELLED by 1000") == JobState.cancelled
    assert job_state("RUNNING") == JobState.running and job_state("COMPLETING") == JobState.running
    assert job_state("OUT_OF_MEMORY") == JobState.failed and job_state("NODE_FAIL") == JobState.failed
    assert job_state("REQUEUED") == JobState.pending
    assert gpus_of("billing=1,cpu=1,gres/gpu=2,mem=256M,node=1") == 2
    assert gpus_of("gres/gpu=4,gres/gpu:gh200=4") == 4
    assert gpus_of("cpu=1,mem=1G") == 0
    assert slurm_time("Unknown") is None and slurm_time("") is None
    assert _minutes("2:00:00") == 120 and _minutes("1-00:00:00") == 1440 and _minutes("UNLIMITED") is None
    assert _minutes("30") == 30


def test_a_running_jobs_nodes_and_their_names():
    # squeue --json and sinfo --json of the test cluster: two nodes on one host (NodeHostname=vm)
    job = {"job_id": 1, "job_state": "RUNNING", "nodes": "jt1", "batch_host": "jt1", "job_resources": {
        "nodes": "jt1", "allocated_hosts": 1, "allocated_nodes": [{"nodename": "jt1", "cpus_used": 0}]}}
    assert job_nodes(job) == ["jt1"]
    assert job_nodes({"nodes": "jt2", "job_resources": {}}) == ["jt2"]
    assert job_nodes({"nodes": "jt[1-2]"}) == []  # a host list without allocated_nodes: none is trusted
    assert job_nodes({"job_state": "PENDING", "nodes": ""}) == []
    hosts = node_hosts([{"name": "jt1", "hostname": "vm", "address": "127.0.0.1"},
                        {"name": "gpu1", "hostname": "gpu1", "address": "gpu1"}, {"hostname": "nameless"}])
    assert hosts == {"jt1": ("jt1", "vm", "127.0.0.1"), "gpu1": ("gpu1",)}
