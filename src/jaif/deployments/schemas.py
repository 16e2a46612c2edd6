"""Pydantic views of deployments and their replicas, as the API and the CLI show them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeploymentCreate(BaseModel):
    """A deployment for ``POST /api/v1/deployments`` (the fields of ``jaif deployment create``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="The model id clients use.")
    model: str = Field(min_length=1, max_length=1000, description="A weights path, or a built-in or catalogue model.")
    engine: str = Field(description="llama-cpp, vllm or command.")
    partition: str = Field(max_length=100)
    project: str = Field(max_length=200, description="The project whose allocation pays for the replicas.")
    gpus_per_replica: int = Field(0, ge=0, le=1024)
    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(1, ge=1, le=1000)
    target_inflight: int = Field(4, ge=1, le=100000)
    idle_minutes: float = Field(30, gt=0, le=525600,
                                description="Minutes without a request before scaling to zero (with min_replicas 0).")
    walltime: int = Field(60, ge=1, le=525600, description="Each replica's time limit in minutes.")
    command: str | None = Field(None, max_length=10000, description="The command engine's command line.")
    aliases: list[str] = Field(default_factory=list)


class DeploymentScale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int | None = Field(None, ge=0, le=1000)
    max_replicas: int | None = Field(None, ge=1, le=1000)


class ReplicaOut(BaseModel):
    id: str
    state: str
    reason: str
    scheduler: str
    job_id: str = Field(description="The scheduler's job id.")
    slurm_job_id: str | None = Field(description="Slurm's job id; null under the local scheduler.")
    node: str | None
    port: int | None
    created_at: datetime
    state_since: datetime
    ready_at: datetime | None
    ended_at: datetime | None


class DeploymentStatus(BaseModel):
    """What clients see of a deployment in ``/v1/models`` and the portal."""

    state: str = Field(description="ready (a replica serves), starting (one is on its way), cold (none; "
                                   "a request starts one and is held until it is ready), or unavailable (no "
                                   "replica can be started: ``reason``)")
    ready_replicas: int
    estimated_ready_s: float | None = Field(
        description="While starting or cold: about how many seconds until a replica is ready (from this "
                    "deployment's past starts); null when ready.")
    reason: str | None = None


class EventOut(BaseModel):
    at: datetime
    kind: str = Field(description="scale or replica")
    message: str


class DeploymentOut(BaseModel):
    name: str
    model: str
    engine: str
    partition: str
    project: str
    gpus_per_replica: int
    min_replicas: int
    max_replicas: int
    target_inflight: int
    idle_minutes: float
    walltime_minutes: int
    command: str | None
    aliases: list[str]
    state: str = Field(description="active, or deleting (its replicas drain)")
    ready_replicas: int
    status: DeploymentStatus
    last_request_at: datetime | None = Field(description="The newest request any gateway reported for it.")
    replicas: list[ReplicaOut] = Field(description="Its live replicas, and the last ended or failed ones.")
    events: list[EventOut] = Field(description="The controller's latest decisions about it, newest first.")
    created_at: datetime


class DeploymentDeleted(BaseModel):
    name: str
    state: str = Field(description="deleted (it had no replica), or deleting (its replicas drain first)")
    draining: int = Field(description="Its replicas still to drain and stop.")


class DeploymentReport(BaseModel):
    """What a deployment used and served in a period: its replicas' charged GPU-hours and energy (from the
    accounting import) against the tokens its model served (from the usage ledger)."""

    deployment: str
    model: str = Field(description="The weights it serves, as given at its creation.")
    project: str = Field(description="The project whose allocation its replicas are charged to.")
    since: datetime = Field(description="The period's start: the given one, at the earliest the deployment's creation.")
    until: datetime | None = Field(description="The period's end (exclusive); null: now.")
    replicas: int = Field(description="Replica jobs charged by the accounting import that ended in the period.")
    replicas_uncharged: int = Field(description="Its replica jobs not charged yet: running, or not imported yet.")
    gpu_hours: float
    energy_kwh: float
    energy_measured_kwh: float = Field(description="Of energy_kwh: Slurm's ConsumedEnergy.")
    energy_modelled_kwh: float = Field(description="Of energy_kwh: the partition's power model.")
    co2_kg: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    tokens: int = Field(description="prompt_tokens + completion_tokens served under the deployment's name.")
    kwh_per_1k_tokens: float | None = Field(description="energy_kwh per 1,000 tokens; null when no token was served.")
