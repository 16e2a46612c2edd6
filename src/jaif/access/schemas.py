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
