"""What the catalogue takes and shows: solutions with their model cards."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SLUG_MAX = 100
NAME_MAX = 200
DOMAIN_MAX = 100
LICENCE_MAX = 200
TEXT_MAX = 20_000
LANGUAGE_MAX = 50
LANGUAGES_MAX = 50


class ModelCardFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field("", max_length=TEXT_MAX)
    domain: str = Field("", max_length=DOMAIN_MAX, description="health, climate, materials, public sector, ...")
    licence: str = Field("", max_length=LICENCE_MAX, description="An SPDX identifier where there is one.")
    intended_use: str = Field("", max_length=TEXT_MAX)
    limitations: str = Field("", max_length=TEXT_MAX)
    languages: list[str] = Field(default_factory=list, max_length=LANGUAGES_MAX)
    training_data: str = Field("", max_length=TEXT_MAX)


class SolutionCreate(ModelCardFields):
    slug: str = Field(min_length=1, max_length=SLUG_MAX, pattern=SLUG_PATTERN, description="URL name, e.g. med-qa")
    name: str = Field(min_length=1, max_length=NAME_MAX)
    model: str | None = Field(None, max_length=200, description="A gateway model name or alias to link.")
    is_published: bool = False


class SolutionUpdate(BaseModel):
    """Only the fields sent change; ``model: null`` unlinks the gateway model."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    summary: str | None = Field(None, max_length=TEXT_MAX)
    domain: str | None = Field(None, max_length=DOMAIN_MAX)
    licence: str | None = Field(None, max_length=LICENCE_MAX)
    intended_use: str | None = Field(None, max_length=TEXT_MAX)
    limitations: str | None = Field(None, max_length=TEXT_MAX)
    languages: list[str] | None = Field(None, max_length=LANGUAGES_MAX)
    training_data: str | None = Field(None, max_length=TEXT_MAX)
    model: str | None = Field(None, max_length=200)
    is_published: bool | None = None


class LinkedModel(BaseModel):
    """The gateway model behind a solution: call it with a project API key under any of these names."""

    name: str
    kind: str
    context_length: int
    aliases: list[str]
    served: bool = Field(description="Active and with at least one active replica, or a deployment that can start one.")
    state: str | None = Field(None, description="A deployment's status: ready, starting, cold or unavailable.")
    estimated_ready_s: float | None = Field(None, description="While starting or cold: about how long until ready.")


class Solution(BaseModel):
    id: str
    slug: str
    name: str
    summary: str
    domain: str
    licence: str
    intended_use: str
    limitations: str
    languages: list[str]
    training_data: str
    model: LinkedModel | None
    is_published: bool
    created_at: datetime
