"""What the support desk takes and shows. Services return these, never the ORM rows, so an internal
note can only reach a user if a service put it there."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from jaif.support.models import SupportCategory, SupportStatus

SUBJECT_MAX = 300
BODY_MAX = 20_000


class SupportRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: SupportCategory
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX, description="What you need help with.")
    project_id: str | None = Field(
        None, max_length=32, description="A project you are a member of, if it concerns one."
    )


class SupportReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=BODY_MAX)
    internal: bool = Field(False, description="Operators only: a note for other operators, never shown to users.")


class SupportStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: SupportStatus


class SupportAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee_id: str | None = Field(None, max_length=32, description="An operator's user id; null to unassign.")


class SupportPerson(BaseModel):
    """Someone on a request. Operators, and the person themself, see the id and address; anyone else
    sees the display name only (internal user ids and operators' addresses are not shown to users)."""

    id: str | None = None
    email: str | None = None
    name: str


class SupportReplyView(BaseModel):
    id: str
    author: SupportPerson
    from_operator: bool
    body: str
    internal: bool
    created_at: datetime


class SupportRequestSummary(BaseModel):
    id: str
    category: SupportCategory
    subject: str
    status: SupportStatus
    requester: SupportPerson
    project_id: str | None
    project_name: str | None
    assignee: SupportPerson | None
    replies: int = Field(description="Replies the caller can see.")
    created_at: datetime
    updated_at: datetime


class SupportRequestDetail(SupportRequestSummary):
    body: str
    thread: list[SupportReplyView] = Field(description="Replies the caller can see, oldest first.")
    can_reply: bool
    allowed_statuses: list[SupportStatus] = Field(description="Statuses the caller may set now.")
