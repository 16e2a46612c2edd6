"""Pydantic views of access objects, as the CLI and the API show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
