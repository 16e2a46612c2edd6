"""Compute services against a real database, with a fake of our own Scheduler protocol (what it was
asked to submit and cancel, the states and accounting it reports)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jaif.allocations import service as allocations
from jaif.compute.backend import Compute
from jaif.compute.models import JobState
from jaif.compute.scheduler import AccountingEntry, JobRequest, JobStatus, PartitionInfo
from jaif.config import Settings
from tests.support.services import api, engine, factory, mailer, migrated_url, session, world  # noqa: F401


@dataclass
class FakeScheduler:
    kind: str = "slurm"
    cluster: str = "fake"
    reported: list[PartitionInfo] = field(default_factory=lambda: [PartitionInfo("gpu", 2, 4, 8, 16384, 120)])
    submitted: list[JobRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    states: dict[str, JobStatus] = field(default_factory=dict)
    entries: list[AccountingEntry] = field(default_factory=list)

    def partitions(self) -> list[PartitionInfo]:
        return self.reported

    def submit(self, request: JobRequest) -> str:
        job_id = str(100 + len(self.submitted))
        self.submitted.append(request)
        self.states[job_id] = JobStatus(job_id, JobState.pending, "Priority")
        return job_id

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.states[job_id] = JobStatus(job_id, JobState.cancelled, ended_at=datetime.now(UTC))

    def status(self, job_ids):
        return {j: self.states[j] for j in job_ids if j in self.states}

    def accounting(self, *, since: datetime):
        return [e for e in self.entries if e.ended_at >= since]

    def finish(self, job_id: str, *, seconds: int, state: JobState = JobState.completed, account: str = "",
               gpus: int = 1, nodes: int = 1, energy_j: float | None = None, partition: str = "gpu") -> None:
        end = datetime.now(UTC)
        start = end - timedelta(seconds=seconds)
        self.states[job_id] = JobStatus(job_id, state, started_at=start, ended_at=end, exit_code=0)
        self.entries.append(AccountingEntry(
            cluster=self.cluster, job_id=job_id, name="job", user="root", account=account, partition=partition,
            state=state, submitted_at=start, started_at=start, ended_at=end, elapsed_s=seconds, nodes=nodes,
            gpus=gpus, consumed_energy_j=energy_j,
        ))


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def compute(scheduler: FakeScheduler, tmp_path: Path) -> Compute:
    settings = Settings(data_dir=tmp_path / "var", slurm={"submit_user": "nobody"},
                        inference={"builtin_models": False})
    return Compute(settings, scheduler)


def grant(db, project, gpu_hours: float = 10.0, *, partition: str = "gpu", days: float = 30, **kw):
    """A GPU-hour allocation of ``project`` on ``partition``, from now (or ``starts_at``) for ``days``."""
    return allocations.allocate(session=db, project_id=project.id, resource="gpu_hours", amount=gpu_hours,
                                partition=partition, days=days, **kw)


async def wait_state(client, job_id, states, timeout=20.0):
    """Poll GET /api/v1/jobs/{id} until the job is in one of ``states``."""
    for _ in range(int(timeout / 0.1)):
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        if job["state"] in states:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job['state']}")
