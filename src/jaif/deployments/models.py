"""Deployments: a model the platform itself runs as scheduler jobs (replicas), and those replicas.

A deployment serves through a gateway model of its own name (``models``, with its aliases and the
replicas' bearer key as ``upstream_key``): the controller (controller.py) adds a replica's URL to that
model once the replica passes its readiness check, and takes it out before it is cancelled.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import Project
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class Engine(enum.StrEnum):
    llama_cpp = "llama-cpp"
    vllm = "vllm"
    command = "command"


class DeploymentState(enum.StrEnum):
    active = "active"
    deleting = "deleting"  # its replicas drain; the deployment goes when none is left


class ReplicaState(enum.StrEnum):
    pending = "pending"  # in the scheduler's queue (``reason``: the scheduler's)
    starting = "starting"  # running, not yet ready
    ready = "ready"  # passed its readiness check: in the routing
    draining = "draining"  # out of the routing; cancelled once its requests have finished
    ended = "ended"  # stopped by the platform
    failed = "failed"  # ended on its own, or cancelled for failing its checks

    @property
    def live(self) -> bool:
        return self not in (ReplicaState.ended, ReplicaState.failed)


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # As the operator gave it: a weights path, a built-in or a catalogue model's name (engines.py resolves it).
    model: Mapped[str] = mapped_column(String(1000))
    engine: Mapped[str] = mapped_column(String(20))
    partition: Mapped[str] = mapped_column(String(100))
    gpus_per_replica: Mapped[int] = mapped_column(Integer)
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    target_inflight: Mapped[int] = mapped_column(Integer)
    idle_minutes: Mapped[float] = mapped_column(Float)  # without a request this long: scaled to zero (min 0)
    walltime_minutes: Mapped[int] = mapped_column(Integer)
    # The project whose allocation pays for the replicas (they are its jobs).
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    command: Mapped[str | None] = mapped_column(Text, nullable=True)  # the command engine's template
    # The gateway model it serves through (its name and aliases; the replicas' key as its upstream_key).
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(20), default=DeploymentState.active)
    # The newest request any gateway process reported for it (GatewayLoad): scale to zero counts from it.
    last_request_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why the controller could not submit a replica (no allocation, the scheduler refusing); None once it could.
    blocked: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship()
    replicas: Mapped[list[DeploymentReplica]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan", order_by="DeploymentReplica.created_at"
    )


class DeploymentReplica(Base):
    """One engine process: a job of the deployment's project (``compute_jobs``)."""

    __tablename__ = "deployment_replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=ReplicaState.pending)
    reason: Mapped[str] = mapped_column(String(300), default="")
    scheduler: Mapped[str] = mapped_column(String(20))  # local | slurm
    job_id: Mapped[str] = mapped_column(String(64))  # the scheduler's id
    job_ref: Mapped[str | None] = mapped_column(ForeignKey("compute_jobs.id", ondelete="SET NULL"), nullable=True)
    workdir: Mapped[str] = mapped_column(String(1000))
    node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    health_failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    deployment: Mapped[Deployment] = relationship(back_populates="replicas")

    @property
    def url(self) -> str | None:
        """The replica's OpenAI-compatible base URL, once it has said where it listens."""
        if self.node is None or self.port is None:
            return None
        host = f"[{self.node}]" if ":" in self.node else self.node
        return f"http://{host}:{self.port}/v1"

    @property
    def slurm_job_id(self) -> str | None:
        return self.job_id if self.scheduler == "slurm" else None


class DeploymentEvent(Base):
    """One decision of the controller (scaling, a replica's state change), with its reason: what the
    operator reads on the deployments page and in ``jaif deployment show``. The newest ones are kept."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))  # scale | replica
    message: Mapped[str] = mapped_column(String(500))


class GatewayLoad(Base):
    """What one gateway process (``instance``) last reported about the deployments it serves, every
    ``deployments.report_interval_s``: requests in flight per replica URL, requests held for a replica
    (cold start), and when it last had a request, per deployment model. The controller, which runs in one
    process only, sums the fresh reports: the autoscaler and the drain see every process's requests."""

    __tablename__ = "gateway_load"

    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # {model name: {"inflight": {url: n}, "held": n, "last": epoch seconds or null}}
    load: Mapped[dict] = mapped_column(JSON, default=dict)
