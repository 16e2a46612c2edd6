"""Pydantic views of jobs, accounting and reports, as the API and the CLI show them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class JobSubmit(BaseModel):
    """A job for ``POST /api/v1/jobs``: a template with parameters, or a raw batch script."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(max_length=200, description="The project's name.")
    partition: str = Field(max_length=100)
    gpus: int = Field(ge=0, le=1024, description="GPUs per node.")
    nodes: int = Field(1, ge=1, le=100000)
    time: int = Field(ge=1, le=525600, description="Time limit in minutes.")
    name: str | None = Field(None, max_length=200)
    template: str | None = Field(None, max_length=50)
    params: dict[str, str] = Field(default_factory=dict)
    script: str | None = Field(None, description="A raw batch script (text), instead of a template.")
    inputs: list[str] = Field(default_factory=list, max_length=20,
                              description="Ids of the project's files (file-…) copied into the job's directory.")


class JobInput(BaseModel):
    id: str = Field(description="The project file's id (file-…).")
    name: str = Field(description="Its name in the job's directory.")


class JobOut(BaseModel):
    job_id: str = Field(description="The scheduler's job id (Slurm's own under Slurm).")
    id: str
    scheduler: str
    cluster: str
    project: str
    user: str | None
    name: str
    partition: str
    account: str
    run_as: str | None
    nodes: int
    gpus_per_node: int
    gpus: int
    charged_gpus: int
    time_limit_min: int
    template: str | None
    state: str
    reason: str
    exit_code: int | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    accounted: bool
    workdir: str
    inputs: list[JobInput] = Field(default=[], description="The project's files copied into its directory.")


class JobFileOut(BaseModel):
    name: str
    path: str = Field(description="Relative to the job's directory: pass as ``path`` to list or download it.")
    kind: str = Field(description="dir, file, link (never followed) or other (a FIFO, a socket, a device)")
    size: int
    modified: datetime


class JobFiles(BaseModel):
    job_id: str
    path: str = Field(description="The folder listed, relative to the job's directory (empty: the directory).")
    entries: list[JobFileOut]
    truncated: bool = Field(description="More entries than compute.max_listed_files: only that many are listed.")
    missing: bool = Field(False, description="The job's directory is not there (any more).")


class JobLogs(BaseModel):
    job_id: str
    state: str
    stdout: str
    stderr: str
    stdout_offset: int = Field(description="Pass as stdout_offset to read on from here.")
    stderr_offset: int
    refused: list[str] = Field(default=[], description="Logs not shown, and why (a log that is a symbolic "
                               "link, or not a regular file of the job's account, is never read).")


class PartitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    nodes: int
    gpus_per_node: int
    gpu_model: str
    cpus_per_node: int
    memory_gb_per_node: float
    gpu_power_w: float
    node_power_w: float
    max_walltime_min: int | None
    charge: str


class ImportResult(BaseModel):
    seen: int = 0
    imported: int = 0
    already: int = 0
    foreign: int = 0
    gpu_hours: float = 0.0
    energy_kwh: float = 0.0
    uncharged_gpu_hours: float = 0.0


class UsageTotals(BaseModel):
    jobs: int
    gpu_hours: float
    energy_kwh: float
    co2_kg: float
    energy_measured_kwh: float
    energy_modelled_kwh: float


class PartitionUsage(UsageTotals):
    partition: str


class ComputeReport(BaseModel):
    """What a project (organisation, call) used in a period: the AI Factory calls' final report."""

    scope: str  # project | organisation | call
    name: str
    since: datetime | None
    until: datetime | None
    jobs: int
    gpu_hours: float
    energy_kwh: float
    co2_kg: float
    energy_measured_kwh: float
    energy_modelled_kwh: float
    grid_intensity_g_per_kwh: float
    tokens: int
    allocated_gpu_hours: float
    partitions: list[PartitionUsage]
    projects: list[str]
