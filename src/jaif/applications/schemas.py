"""Pydantic views of applications and reviews: drafts as the applicant saves them, what each role sees."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from jaif.inputs import HoursPerPartition, Input

Kind = Literal["new", "renewal", "top_up"]
Risk = Literal["minimal", "limited", "high", "unacceptable"]
SectorName = Literal["academia", "startup", "sme", "industry", "public"]
State = Literal[
    "draft", "submitted", "technical_review", "peer_review", "accepted", "rejected", "allocated", "withdrawn"
]


class OrganisationProposal(Input):
    """An organisation jaif does not know yet; it is created when the application is submitted."""

    name: str = Field(min_length=1, max_length=200)
    sector: SectorName
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 two-letter code, e.g. DE.")


class DraftIn(Input):
    """Any subset of an application's fields: what is given is saved, the rest is kept (autosave)."""

    call_id: str | None = Field(None, max_length=100, description="The call's id or slug.")
    kind: Kind | None = None
    project_id: str | None = Field(None, max_length=32, description="For renewals and top-ups: the project.")
    project_name: str | None = Field(None, max_length=60, pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str | None = Field(None, max_length=300)
    abstract: str | None = Field(None, max_length=20000)
    domain: str | None = Field(None, max_length=100)
    organisation_id: str | None = Field(None, max_length=32)
    organisation: OrganisationProposal | None = None
    team: list[Annotated[str, Field(max_length=320)]] | None = Field(
        None, max_length=50, description="E-mail addresses of team members."
    )
    requested_gpu_hours: HoursPerPartition | None = Field(None, description="GPU-hours per partition.")
    requested_tokens: int | None = Field(None, ge=0, le=10**15)
    duration_months: int | None = Field(None, ge=1, le=60)
    datasets: str | None = Field(None, max_length=20000)
    personal_data: bool | None = None
    ai_act_risk: Risk | None = None
    ai_act_notes: str | None = Field(None, max_length=20000)


class Problem(BaseModel):
    field: str
    message: str


class TimeToAccess(BaseModel):
    """Submitted to allocated (or to now, while pending): wall-clock hours and working days (Mon-Fri)."""

    submitted_at: datetime
    allocated_at: datetime | None
    hours: float
    working_days: float
    target_days: int
    within_target: bool | None = Field(description="None while not yet allocated.")


class EventOut(BaseModel):
    from_state: str | None
    to_state: str
    actor: str = Field(description="Who: an e-mail address, 'you', 'operator' or 'automatic'.")
    note: str
    created_at: datetime


class ReviewOut(BaseModel):
    """A review. Applicants see stage, score and comment only, without who wrote it."""

    id: str | None = None
    application_id: str | None = None
    application_title: str | None = None
    reviewer_email: str | None = None
    stage: str
    score: int | None
    comment: str
    assigned_at: datetime | None = None
    submitted_at: datetime | None


class ApplicationSummary(BaseModel):
    id: str
    call_id: str
    call_slug: str
    kind: str
    title: str
    applicant_email: str
    organisation_name: str | None
    state: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    allocated_at: datetime | None


class ApplicationOut(ApplicationSummary):
    call_name: str
    review_mode: str
    project_id: str | None
    project_name: str
    abstract: str
    domain: str
    organisation_id: str | None
    organisation_proposal: OrganisationProposal | None
    team: list[str]
    requested_gpu_hours: dict[str, float]
    requested_tokens: int
    duration_months: int | None
    datasets: str
    personal_data: bool
    ai_act_risk: str | None
    ai_act_notes: str
    decision_comment: str
    decided_at: datetime | None
    cutoff: str | None = Field(description="Peer-review calls: the cut-off this application is reviewed at.")
    time_to_access: TimeToAccess | None
    events: list[EventOut]
    reviews: list[ReviewOut]
    allowed_actions: list[str] = Field(description="What the viewer may do with it now.")


class StageIn(Input):
    stage: Literal["technical_review", "peer_review"]
    note: str = Field("", max_length=5000)


class DecisionIn(Input):
    """An operator's decision. Accepting allocates at once unless ``allocate`` is false; the grant is
    what was requested unless given here."""

    accept: bool
    comment: str = Field("", max_length=20000)
    allocate: bool = True
    gpu_hours: HoursPerPartition | None = Field(None, description="GPU-hours granted per partition.")
    tokens: int | None = Field(None, ge=0, le=10**15)
    duration_months: int | None = Field(None, ge=1, le=60)


class GrantIn(Input):
    gpu_hours: HoursPerPartition | None = None
    tokens: int | None = Field(None, ge=0, le=10**15)
    duration_months: int | None = Field(None, ge=1, le=60)


class AssignIn(Input):
    application_id: str = Field(max_length=32)
    reviewer_email: str = Field(min_length=3, max_length=320)
    stage: Literal["technical", "peer"]


class ReviewIn(Input):
    score: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent).")
    comment: str = Field(min_length=1, max_length=20000)


class DeclineIn(Input):
    reason: str = Field(min_length=1, max_length=5000, description="Why: the operator reads it, the applicant never.")
    conflict_of_interest: bool = Field(False, description="Declined because of a conflict of interest.")
