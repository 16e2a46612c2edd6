"""What training events take and show."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

TITLE_MAX = 300
LOCATION_MAX = 300
DESCRIPTION_MAX = 20_000
SEATS_MAX = 100_000


class RegistrationStatus(enum.StrEnum):
    registered = "registered"
    waitlisted = "waitlisted"
    cancelled = "cancelled"


class TrainingEventCreate(BaseModel):
    """Times without a time zone are taken as UTC."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)
    starts_at: datetime
    ends_at: datetime
    location: str = Field("online", min_length=1, max_length=LOCATION_MAX)
    seats: int = Field(ge=1, le=SEATS_MAX)
    registration_closes_at: datetime | None = Field(None, description="Default: registration closes at the start.")
    is_published: bool = True


class TrainingEventUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_MAX)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    location: str | None = Field(None, min_length=1, max_length=LOCATION_MAX)
    seats: int | None = Field(None, ge=1, le=SEATS_MAX)
    registration_closes_at: datetime | None = None
    is_published: bool | None = None


class Attendee(BaseModel):
    id: str
    email: str
    name: str


class EventRegistration(BaseModel):
    id: str
    event_id: str
    user: Attendee
    status: RegistrationStatus
    waitlist_position: int | None = Field(description="1 for the next to get a seat; null unless waitlisted.")
    created_at: datetime


class TrainingEvent(BaseModel):
    id: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    location: str
    seats: int
    registration_closes_at: datetime | None
    is_published: bool
    registered: int
    waitlisted: int
    seats_left: int
    registration_open: bool
    my_registration: EventRegistration | None = Field(description="The caller's registration, if any (also cancelled).")
