"""Usage reports from the ledger."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from jaif.access.models import Project
from jaif.metering.models import UsageRecord


class ModelUsage(BaseModel):
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ProjectUsage(BaseModel):
    project: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    errors: int
    token_quota: int | None
    tokens_spent: int
    tokens_leased: int
    models: list[ModelUsage]


def model_usage(
    *, session: Session, model: str, since: datetime | None = None, until: datetime | None = None
) -> ModelUsage:
    """Requests and tokens served under one gateway model's name (every project's), in [since, until).
    Not indexed by model (every index costs each request's insert): a scan, for occasional reports."""
    filters = [UsageRecord.model == model]
    if since is not None:
        filters.append(UsageRecord.created_at >= since)
    if until is not None:
        filters.append(UsageRecord.created_at < until)
    n, prompt, completion, total = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.total_tokens), 0),
        ).where(*filters)
    ).one()
    return ModelUsage(model=model, requests=n, prompt_tokens=prompt, completion_tokens=completion,
                      total_tokens=total)


def project_usage(
    *, session: Session, project: Project, since: datetime | None = None, until: datetime | None = None
) -> ProjectUsage:
    filters = [UsageRecord.project_id == project.id]
    if since is not None:
        filters.append(UsageRecord.created_at >= since)
    if until is not None:
        filters.append(UsageRecord.created_at < until)
    rows = session.execute(
        select(
            UsageRecord.model,
            func.count(),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.total_tokens), 0),
            func.coalesce(func.sum(case((UsageRecord.status != "ok", 1), else_=0)), 0),
        )
        .where(*filters)
        .group_by(UsageRecord.model)
        .order_by(UsageRecord.model)
    ).all()
    models = [
        ModelUsage(model=m, requests=n, prompt_tokens=p, completion_tokens=c, total_tokens=t)
        for m, n, p, c, t, _e in rows
    ]
    return ProjectUsage(
        project=project.name,
        requests=sum(m.requests for m in models),
        prompt_tokens=sum(m.prompt_tokens for m in models),
        completion_tokens=sum(m.completion_tokens for m in models),
        total_tokens=sum(m.total_tokens for m in models),
        errors=sum(int(r[5]) for r in rows),
        token_quota=project.token_quota,
        tokens_spent=project.tokens_spent,
        tokens_leased=project.tokens_leased,
        models=models,
    )
