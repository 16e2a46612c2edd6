"""What the portal's pages show: the display helpers and labels every template may call (``number``,
``when``, ``state_labels``...), ``render`` (a template with them), ``message_page`` (a title and a
sentence), and ``sentence`` (a service's message as a sentence for a page).

Concepts' pages (``<concept>/pages.py``) render with these; reading forms is web/forms.py.
"""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import Request
from starlette.responses import Response

from jaif.web.templating import TEMPLATES

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
KIND_LABELS = {"new": "New project", "renewal": "Renewal", "top_up": "Top-up"}
SECTORS = {
    "academia": "Academia", "startup": "Start-up", "sme": "SME", "industry": "Industry", "public": "Public sector",
}


def number(value: float | int | None, digits: int = 0) -> str:
    """1234567 -> '1,234,567'; None -> '—'."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def figure(value: float | int | None, digits: int = 2) -> str:
    """A quantity to at most ``digits`` decimals, without trailing zeros: 50 -> '50', 0.0175 -> '0.02',
    1234.5 -> '1,234.5'; None -> '—'. For GPU-hours, which are mostly whole amounts and small charges."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def measure(value: float | int | None) -> str:
    """A measured quantity (kWh, kg CO2) to about three significant digits, without binary noise or
    trailing zeros: 0.017499999999999998 -> '0.0175', 2.51225 -> '2.51', 1234.5 -> '1,235'; None -> '—'.
    Below a millionth it is '< 0.000001' (not a misleading 0)."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size < 1e-6:
        return "< 0.000001" if value > 0 else "> -0.000001"
    digits = 2 if size >= 1 else min(6, 2 - math.floor(math.log10(size)))
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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


def size(value: int | None) -> str:
    """A file's size: 0 -> '0 bytes'; 1536 -> '1.5 KiB'; 5 * 2**20 -> '5 MiB'; None -> '—'."""
    if value is None:
        return "—"
    if value < 1024:
        return f"{value} byte{'' if value == 1 else 's'}"
    amount = value / 1024
    for unit in ("KiB", "MiB"):
        if amount < 1024:
            return f"{figure(amount, 1)} {unit}"
        amount /= 1024
    return f"{figure(amount, 1)} GiB"


HELPERS = {
    "size": size,
    "number": number,
    "figure": figure,
    "compact": compact,
    "measure": measure,
    "percent": percent,
    "when": when,
    "state_labels": STATE_LABELS,
    "review_modes": REVIEW_MODES,
    "risk_labels": RISK_LABELS,
    "sector_labels": SECTORS,
    "kind_labels": KIND_LABELS,
}


def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """Render a page with the display helpers; ``section`` marks the current link in the navigation."""
    return TEMPLATES.TemplateResponse(request, template, {**HELPERS, **context}, status_code=status_code)


def message_page(request: Request, *, title: str, message: str, status_code: int = 200,
                 link: tuple[str, str] | None = None) -> Response:
    """A page with a title, one message and perhaps a link (href, text): a refused form, an expired link."""
    return render(request, "message.html", status_code, title=title, message=message, link=link)
