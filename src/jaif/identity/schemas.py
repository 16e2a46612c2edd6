"""What the identity API shows: the current user, personal access tokens, members and invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from jaif.inputs import Input


class OrganisationRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sector: str
    country: str


class Membership(BaseModel):
    project_id: str
    project_name: str
    role: str = Field(description="pi (principal investigator) or member")


class Me(BaseModel):
    id: str
    email: str
    name: str
    role: str = Field(description="Platform role: user, reviewer or operator")
    roles: list[str] = Field(description="The platform role, and pi where the user leads a project")
    email_verified: bool
    organisation: OrganisationRef | None
    projects: list[Membership]
    sso_providers: list[str] = Field(description="Issuers of the single sign-on identities linked to the user")
    created_at: datetime


class TokenCreate(Input):
    name: str = Field("", max_length=200)
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Leave out for a token without expiry")


class TokenView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenView):
    token: str = Field(description="The token itself. It is shown only this once and cannot be recovered.")


class MemberView(BaseModel):
    user_id: str | None = Field(description="Shown to the project's PIs and operators, and for yourself.")
    email: str
    name: str
    role: str
    joined_at: datetime


class InvitationCreate(Input):
    email: str = Field(min_length=3, max_length=320)
    role: str = Field("member", pattern="^(member|pi)$")


class InvitationView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    role: str
    project_id: str
    expires_at: datetime
    created_at: datetime
    accepted_at: datetime | None


class KeyCreate(Input):
    name: str = Field("", max_length=200)
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    rpm_limit: int | None = Field(None, ge=1, le=10**12)
    tpm_limit: int | None = Field(None, ge=1, le=10**12)


class KeyView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    user_id: str | None
    rpm_limit: int | None
    tpm_limit: int | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyView):
    key: str = Field(description="The API key itself. It is shown only this once and cannot be recovered.")


class UserView(BaseModel):
    """An account as operators see it (/api/v1/users)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str
    role: str = Field(description="user, reviewer or operator")
    is_active: bool
    email_verified_at: datetime | None
    created_at: datetime


class UserPatch(BaseModel):
    """What an operator may change about an account; the account's sessions end."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "reviewer", "operator"] | None = None
    is_active: bool | None = Field(None, description="false deactivates the account (sign-in and tokens refused)")
