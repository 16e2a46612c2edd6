"""Pydantic views of access calls: what operators send to create or change one, what everyone sees."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from jaif.inputs import HoursPerPartition, Input

Kind = Literal["playground", "fast_lane", "large_scale", "inference_only", "custom"]
Mode = Literal["automatic", "technical", "peer"]
SectorName = Literal["academia", "startup", "sme", "industry", "public"]


class _CallFields(Input):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    description: str = Field("", max_length=20000)
    opens_at: datetime | None = Field(None, description="Default: now.")
    closes_at: datetime | None = None
    cutoffs: list[date] = Field(default_factory=list, max_length=100, description="Peer-review cut-off dates.")
    offered_gpu_hours: HoursPerPartition = Field(default_factory=dict, description="GPU-hours offered per partition.")
    offered_tokens: int = Field(0, ge=0, le=10**15)
    max_gpu_hours: float | None = Field(None, ge=0, le=1e12, description="Most GPU-hours one application may ask.")
    min_gpu_hours: float | None = Field(None, ge=0, le=1e12)
    max_tokens: int | None = Field(None, ge=0, le=10**15, description="Most tokens one application may ask.")
    durations_months: list[int] = Field(default_factory=list, max_length=24, description="Durations to choose from.")
    eligible_sectors: list[SectorName] = Field(default_factory=list, description="Empty: every sector.")
    eligible_countries: list[Annotated[str, Field(max_length=10)]] | None = Field(
        None, max_length=300, description="ISO codes; null: EU member states and Horizon Europe associated countries."
    )
    review_mode: Mode = "technical"
    target_days_to_access: int = Field(10, ge=1, le=365, description="Target in working days.")
    is_active: bool = True


class CallIn(_CallFields):
    slug: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")


class CallPatch(Input):
    """Change some fields of a call; fields left out keep their value."""

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: Kind | None = None
    description: str | None = Field(None, max_length=20000)
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    cutoffs: list[date] | None = Field(None, max_length=100)
    offered_gpu_hours: HoursPerPartition | None = None
    offered_tokens: int | None = Field(None, ge=0, le=10**15)
    max_gpu_hours: float | None = Field(None, ge=0, le=1e12)
    min_gpu_hours: float | None = Field(None, ge=0, le=1e12)
    max_tokens: int | None = Field(None, ge=0, le=10**15)
    durations_months: list[int] | None = Field(None, max_length=24)
    eligible_sectors: list[SectorName] | None = None
    eligible_countries: list[Annotated[str, Field(max_length=10)]] | None = Field(None, max_length=300)
    review_mode: Mode | None = None
    target_days_to_access: int | None = Field(None, ge=1, le=365)
    is_active: bool | None = None


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    slug: str
    name: str
    kind: str
    description: str
    opens_at: datetime
    closes_at: datetime | None
    cutoffs: list[str]
    next_cutoff: str | None
    offered_gpu_hours: dict[str, float]
    offered_tokens: int
    max_gpu_hours: float | None
    min_gpu_hours: float | None
    max_tokens: int | None
    durations_months: list[int]
    eligible_sectors: list[str]
    eligible_countries: list[str] | None
    review_mode: str
    target_days_to_access: int
    is_active: bool
    is_open: bool
    created_at: datetime


class TimeToAccessOut(BaseModel):
    """How fast a call's applicants got access: submitted to allocated, in working days (Mon-Fri)."""

    call_id: str
    call_slug: str
    target_days: int
    allocated: int = Field(description="Applications allocated, that the figures are computed from.")
    pending: int = Field(description="Applications submitted and not yet decided or allocated.")
    median_days: float | None
    p90_days: float | None
    within_target: float | None = Field(description="Share of allocated applications that met the target (0-1).")

