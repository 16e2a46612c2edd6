"""Whether a project may start a job: an active GPU-hour allocation on the partition whose remainder,
less what the project's uncharged jobs may still use, covers time limit x charged GPUs. Refusals say
why in words a user can act on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.access.schemas import Actor
from jaif.allocations import service as allocations
from jaif.compute.models import Job, JobState
from jaif.db.base import utcnow
from jaif.errors import Forbidden, QuotaExceeded

GPU_HOURS = "gpu_hours"


def outstanding_gpu_hours(session: Session, project_id: str, partition: str) -> float:
    """GPU-hours the project's jobs on ``partition`` may still use that no import has charged yet: time
    limit x charged GPUs while they wait or run; what they took once they ended."""
    total = 0.0
    for job in session.scalars(
        select(Job).where(Job.project_id == project_id, Job.partition == partition, Job.accounted_at.is_(None))
    ):
        if not JobState(job.state).finished:
            total += job.charged_gpus * job.time_limit_min / 60.0
        elif job.started_at and job.ended_at:
            total += job.charged_gpus * max(0.0, (job.ended_at - job.started_at).total_seconds()) / 3600.0
    return total


def _day(when: datetime) -> str:
    return f"{when:%Y-%m-%d}"


def check(
    *,
    session: Session,
    actor: Actor,
    project: Project,
    partition: str,
    gpu_hours: float,
    time_min: int,
    charged_gpus: int,
    now: datetime | None = None,
) -> float:
    """Raise Forbidden (no usable allocation) or QuotaExceeded (too little left); returns what is left."""
    now = now or utcnow()
    found = [
        a for a in allocations.list_allocations(session=session, actor=actor, project_id=project.id, resource=GPU_HOURS)
        if a.partition == partition
    ]
    if not found:
        raise Forbidden(f"project {project.name} has no GPU-hour allocation on partition {partition}: "
                        "nothing submitted", param="partition")
    usable = [a for a in found if a.status == "active" and a.starts_at <= now < a.ends_at and a.used < a.amount]
    if not usable:
        latest = max(found, key=lambda a: (a.ends_at, a.created_at))
        if latest.status == "revoked":
            why = f"was revoked on {_day(latest.revoked_at or now)}"
        elif latest.used >= latest.amount or latest.status == "exhausted":
            raise QuotaExceeded(
                f"project {project.name}'s allocation on partition {partition} is exhausted: {latest.used:.2f} of "
                f"{latest.amount:g} GPU-hours used; nothing submitted", param="partition",
            )
        elif latest.starts_at > now:
            why = f"starts on {_day(latest.starts_at)}"
        else:
            why = f"expired on {_day(latest.ends_at)}"
        raise Forbidden(f"project {project.name}'s allocation on partition {partition} {why}; nothing submitted",
                        param="partition")
    left = sum(a.amount - a.used for a in usable)
    outstanding = outstanding_gpu_hours(session, project.id, partition)
    if gpu_hours > left - outstanding + 1e-9:
        pending = f", {outstanding:.2f} of them held by its unfinished jobs" if outstanding else ""
        raise QuotaExceeded(
            f"the job could use {gpu_hours:.2f} GPU-hours ({time_min} min x {charged_gpus} GPUs) but project "
            f"{project.name} has {max(0.0, left - outstanding):.2f} left on partition {partition} "
            f"({left:.2f} in its allocation{pending}): ask for less time or fewer GPUs; nothing submitted",
            param="time",
        )
    return left - outstanding
