"""The Scheduler contract every executor implements (slurm.py, local.py), and the typed values it
exchanges. Nothing here knows Slurm: adapters translate their tools' output into these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from jaif.compute.models import JobState

if TYPE_CHECKING:
    from jaif.compute.isolation import JobPlan


@dataclass(frozen=True)
class PartitionInfo:
    """What a scheduler reports about a partition (the site profile completes it, see site.py)."""

    name: str
    nodes: int
    gpus_per_node: int
    cpus_per_node: int
    memory_mb_per_node: int
    max_walltime_min: int | None  # None: unlimited


@dataclass(frozen=True)
class JobRequest:
    name: str
    account: str
    partition: str
    nodes: int
    gpus_per_node: int
    time_limit_min: int
    script: Path  # the batch script, inside workdir
    workdir: Path
    run_as: str | None = None  # the Unix user the job runs as; None: the user jaif runs as
    environment: dict[str, str] = field(default_factory=dict)  # the job's own variables (nothing of the server's)
    cpus: int | None = None  # per node, for the local executor's limits (Slurm has its own)
    memory_mb: int | None = None
    isolation: JobPlan | None = None  # local executor: how the job is kept from the server (isolation.py)

    @property
    def stdout(self) -> Path:
        return self.workdir / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.workdir / "stderr.log"


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: JobState
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    # The names the job's nodes go by while it runs (Slurm: each node's name, hostname and address);
    # empty from the local executor, and once the job has left the scheduler's queue.
    hosts: tuple[str, ...] = ()


@dataclass(slots=True)  # not frozen: an import builds 100,000 of them, and frozen ones take twice as long
class AccountingEntry:
    """One finished job from the scheduler's accounting (Slurm: an allocation line of ``sacct``)."""

    cluster: str
    job_id: str
    name: str
    user: str
    account: str
    partition: str
    state: JobState
    submitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime
    elapsed_s: int
    nodes: int
    gpus: int
    consumed_energy_j: float | None = None  # None or 0: not recorded


class Scheduler(Protocol):
    """Submit, cancel, status, accounting; plus the partitions it offers."""

    kind: str  # "slurm" or "local"

    @property
    def cluster(self) -> str:
        """The cluster's name in job records (read only: Slurm's is looked up once, when first asked)."""
        ...

    def partitions(self) -> list[PartitionInfo] | None:
        """The partitions the scheduler offers; None when the site profile alone describes them."""
        ...

    def submit(self, request: JobRequest) -> str:
        """Queue the job; returns the scheduler's job id. Raises UpstreamError when the scheduler refuses."""
        ...

    def cancel(self, job_id: str) -> None: ...

    def status(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """The state of each job the scheduler still knows (unknown ids are left out)."""
        ...

    def accounting(self, *, since: datetime) -> Iterable[AccountingEntry]:
        """Jobs that finished since ``since`` (and maybe a few before: callers deduplicate by id)."""
        ...
