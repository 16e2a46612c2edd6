"""Pydantic views of access objects, as the CLI and the API show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from jaif.inputs import Input


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """Who a valid API key speaks for: what the gateway needs on every request."""

    key_id: str
    prefix: str
    project_id: str
    project_name: str
    user_id: str | None
    allowed_models: frozenset[str] | None
    has_quota: bool
    rpm_limit: int | None
    tpm_limit: int | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, for permission checks in services: a signed-in user, a token's user, or the CLI.

    Services take ``actor`` and scope every query to what it may see; the CLI acts as an operator.
    """

    user_id: str | None
    email: str
    role: str  # user | reviewer | operator

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def is_reviewer(self) -> bool:
        return self.role in ("reviewer", "operator")


CLI_ACTOR = Actor(user_id=None, email="cli@localhost", role="operator")
# Someone not signed in, on the public pages (calls, the catalogue, training): sees what is published.
VISITOR = Actor(user_id=None, email="", role="visitor")


# -- /api/v1/organisations and /api/v1/projects (access/directory.py) ------------------------------


Sector = Literal["academia", "startup", "sme", "industry", "public"]


class OrganisationIn(Input):
    name: str = Field(min_length=1, max_length=200)
    sector: Sector
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 two-letter code, e.g. DE.")


class OrganisationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sector: str
    country: str
    created_at: datetime


class OrganisationMemberOut(BaseModel):
    """Someone who named the organisation as theirs (access/membership.py): pending until confirmed."""

    model_config = ConfigDict(from_attributes=True)

    email: str
    name: str
    state: Literal["pending", "confirmed"]
    confirmed_via: Literal["member", "operator", "domain"] | None
    confirmed_at: datetime | None


class ConfirmMemberIn(Input):
    email: str = Field(min_length=3, max_length=320, description="The address of the member to confirm.")


class DomainIn(Input):
    domain: str = Field(min_length=3, max_length=253, description="An e-mail domain, e.g. uni.example.")


class OrganisationDomainsOut(BaseModel):
    domains: list[str] = Field(description="The e-mail domains the organisation registered.")


class ProjectIn(Input):
    name: str = Field(min_length=1, max_length=200)
    organisation_id: str = Field(max_length=32)
    description: str = Field("", max_length=20000)
    pi_email: str | None = Field(None, max_length=320, description="The principal investigator, if known.")
    token_quota: int | None = Field(
        None, ge=0, le=10**15, description="Grant a token allocation of this size for a year; none: unlimited."
    )
    allowed_models: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=200)


class ProjectMemberOut(BaseModel):
    user_id: str
    email: str
    name: str = ""
    role: str


class ProjectOut(BaseModel):
    id: str
    name: str
    organisation_id: str
    organisation_name: str
    description: str
    is_active: bool
    token_quota: int | None = Field(description="Derived from the project's token allocations; null: unlimited.")
    tokens_spent: int
    tokens_leased: int
    allowed_models: list[str] | None
    members: list[ProjectMemberOut]
    created_at: datetime
