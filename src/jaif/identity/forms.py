"""Fields of the identity pages' forms that need reading beyond text: ``expiry_in_days``, the "expires in
(days)" field of the API key and personal access token forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jaif.errors import InvalidRequest


def expiry_in_days(days: str) -> datetime | None:
    """A form's "expires in (days)" field: '' for no expiry, else 1 to 3650 days from now; InvalidRequest
    naming the field otherwise. Used by the API keys and personal access token forms."""
    if not days.strip():
        return None
    try:
        value = float(days)
    except ValueError as exc:
        raise InvalidRequest("Enter a number of days, or leave it empty.", param="expires_in_days") from exc
    if not 0 < value <= 3650:
        raise InvalidRequest("Enter a number of days from 1 to 3650, or leave it empty.", param="expires_in_days")
    return datetime.now(UTC) + timedelta(days=value)
