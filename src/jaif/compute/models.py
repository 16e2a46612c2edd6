"""Compute models: jobs submitted through jaif, accounting records imported from the scheduler, and the
Slurm user names of jaif users."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.access.models import Project
from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class JobState(enum.StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    timeout = "timeout"

    @property
    def finished(self) -> bool:
        return self not in (JobState.pending, JobState.running)


class Job(Base):
    """A job submitted through jaif (CLI, API or portal). ``job_id`` is the scheduler's own id."""

    __tablename__ = "compute_jobs"
    __table_args__ = (
        UniqueConstraint("cluster", "job_id", name="uq_compute_jobs_cluster_job_id"),
        Index("ix_compute_jobs_project_state", "project_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    scheduler: Mapped[str] = mapped_column(String(20))
    cluster: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    partition: Mapped[str] = mapped_column(String(100))
    account: Mapped[str] = mapped_column(String(100))
    run_as: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nodes: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    # GPUs the job is charged for (all GPUs of its nodes where the site charges whole nodes).
    charged_gpus: Mapped[int] = mapped_column(Integer)
    time_limit_min: Mapped[int] = mapped_column(Integer)
    template: Mapped[str | None] = mapped_column(String(50), nullable=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    # The project's files it was given, copied into its directory: [{"id": "file-…", "name": "in.jsonl"}, …]
    inputs: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    workdir: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(20), default=JobState.pending)
    reason: Mapped[str] = mapped_column(String(200), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The names its nodes go by (Slurm: each node's name, hostname and address), space-separated; the
    # last the scheduler reported while it ran ("" before, and under the local executor).
    hosts: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set when the accounting import has charged the job; until then its time limit x GPUs is reserved.
    accounted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    project: Mapped[Project] = relationship()


class JobRecord(Base):
    """One finished job as the scheduler's accounting reports it, charged once (unique by cluster and id)."""

    __tablename__ = "compute_job_records"
    __table_args__ = (
        UniqueConstraint("cluster", "job_id", name="uq_compute_job_records_cluster_job_id"),
        Index("ix_compute_job_records_project_ended", "project_id", "ended_at"),
        Index("ix_compute_job_records_cluster_ended", "cluster", "ended_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    cluster: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    account: Mapped[str] = mapped_column(String(100))
    user: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    partition: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    elapsed_s: Mapped[int] = mapped_column(Integer)
    nodes: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    # GPU-hours as the site counts them (per allocated GPU, or whole nodes).
    gpu_hours: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float)
    # "slurm": Slurm's ConsumedEnergy; "model": the partition's power model x GPUs (or nodes) x elapsed.
    energy_source: Mapped[str] = mapped_column(String(10))
    co2_kg: Mapped[float] = mapped_column(Float)
    # The allocation the GPU-hours were charged to first; None when no allocation covered the job.
    # (Not indexed: allocations are not deleted, and every index costs the import a write per record.)
    allocation_id: Mapped[str | None] = mapped_column(ForeignKey("allocations.id", ondelete="SET NULL"), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SlurmUser(Base):
    """The Slurm (Unix) user name of a jaif user: their association in each of their projects' accounts."""

    __tablename__ = "compute_slurm_users"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
