"""Pydantic views of allocations, as the API and the CLI show them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from jaif.inputs import Input


class AllocationIn(Input):
    """A new allocation. Give ``ends_at`` or ``days`` (from ``starts_at``, default now)."""

    project_id: str = Field(max_length=32)
    resource: Literal["gpu_hours", "tokens"]
    partition: str | None = Field(None, max_length=100, description="The Slurm partition, for GPU-hours.")
    amount: float = Field(gt=0, le=1e15, description="GPU-hours, or tokens (a whole number).")
    starts_at: datetime | None = Field(None, description="Default: now.")
    ends_at: datetime | None = None
    days: float | None = Field(None, gt=0, le=36500, description="Length in days, if ends_at is not given.")


class AllocationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    project_name: str
    application_id: str | None
    resource: str
    partition: str | None
    amount: float
    used: float
    remaining: float
    starts_at: datetime
    ends_at: datetime
    status: str
    created_at: datetime
    revoked_at: datetime | None


class SweepOut(BaseModel):
    expired: int
    exhausted: int
    projects_synced: int
