"""What the portal's pages share: rendering with the display helpers, labels, and running a service call
inside a savepoint so that a refused action leaves nothing half done when the page then answers 400.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from jaif.errors import InvalidRequest, JaifError
from jaif.web.templating import TEMPLATES

T = TypeVar("T")

STATE_LABELS = {
    "draft": "Draft",
    "submitted": "Submitted",
    "technical_review": "In technical review",
    "peer_review": "In peer review",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "allocated": "Allocated",
    "withdrawn": "Withdrawn",
}
IN_FLIGHT = ("draft", "submitted", "technical_review", "peer_review", "accepted")
REVIEW_MODES = {
    "automatic": "automatic: eligible applications are accepted and allocated at once",
    "technical": "technical review, then a decision",
    "peer": "technical and peer review, then a decision",
}
RISK_LABELS = {
    "minimal": "Minimal risk (e.g. spam filters, research prototypes without users)",
    "limited": "Limited risk: transparency duties (e.g. chatbots, generated content)",
    "high": "High risk (Annex III: e.g. hiring, credit, medical devices, critical infrastructure)",
    "unacceptable": "Unacceptable risk: a prohibited practice (Art. 5)",
}
SECTORS = {
    "academia": "Academia", "startup": "Start-up", "sme": "SME", "industry": "Industry", "public": "Public sector",
}


def number(value: float | int | None, digits: int = 0) -> str:
    """1234567 -> '1,234,567'; None -> '—'."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def compact(value: float | int | None) -> str:
    """Short figures for chart axes: 1.2k, 3.4M, 5G."""
    if value is None:
        return "—"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def percent(used: float, amount: float) -> int:
    if amount <= 0:
        return 100 if used > 0 else 0
    return min(100, round(100 * used / amount))


def when(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def sentence(message: str) -> str:
    """A service's message as a sentence for a page: capital first letter, one full stop."""
    message = message.strip()
    return (message[:1].upper() + message[1:]).rstrip(".") + "."


HELPERS = {
    "number": number,
    "compact": compact,
    "percent": percent,
    "when": when,
    "state_labels": STATE_LABELS,
    "review_modes": REVIEW_MODES,
    "risk_labels": RISK_LABELS,
    "sector_labels": SECTORS,
}


async def _form_fields(request: Request) -> dict[str, str]:
    """The text fields of a posted form (files are ignored), read before a synchronous page handler runs."""
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


FormStr = Annotated[str, Form()]
FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """Render a page with the display helpers; ``section`` marks the current link in the navigation."""
    return TEMPLATES.TemplateResponse(request, template, {**HELPERS, **context}, status_code=status_code)


def attempt(session: Session, action: Callable[[], T]) -> T:
    """Run ``action`` in a savepoint: when it raises (a JaifError the page shows), its changes are undone."""
    savepoint = session.begin_nested()
    try:
        result = action()
    except JaifError:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result


def field_error(exc: JaifError, default: str) -> dict[str, str]:
    return {exc.param or default: sentence(exc.message)}


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
