"""The operators' form for a training event: its text fields to the service's arguments (``parse``) and an
event back to the form's values (``values_of``). Times are typed as UTC in ``datetime-local`` fields
(2026-03-01T09:00); the seats as a whole number; *published* is a checkbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jaif.training import schemas

FIELDS = ("title", "description", "starts_at", "ends_at", "location", "seats", "registration_closes_at")
_FORMAT = "%Y-%m-%dT%H:%M"


def _when(text: str, *, label: str, errors: dict[str, str], field: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace(" ", "T"))
        # A time without an offset is UTC (the form says so); one with an offset is that moment, in UTC.
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        errors[field] = f"Give {label} as a date and time, e.g. 2026-03-01T09:00."
        return None


def parse(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the event's fields, {field: error}); the fields are what the service takes (create_event's
    arguments, update_event's changes). The service checks the rest (lengths, times in order, seats)."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "title": form.get("title", "").strip(),
        "description": form.get("description", "").strip(),
        "location": form.get("location", "").strip() or "online",
        "is_published": bool(form.get("is_published")),
    }
    if not data["title"]:
        errors["title"] = "Give the event a title."
    for field, label in (("starts_at", "the start"), ("ends_at", "the end")):
        data[field] = _when(form.get(field, ""), label=label, errors=errors, field=field)
        if data[field] is None and field not in errors:
            errors[field] = f"Give {label} (UTC)."
    data["registration_closes_at"] = _when(form.get("registration_closes_at", ""), label="when registration closes",
                                           errors=errors, field="registration_closes_at")
    seats = form.get("seats", "").strip().replace(",", "").replace("_", "")
    if not (seats.isascii() and seats.isdigit()) or not 1 <= int(seats) <= schemas.SEATS_MAX:
        errors["seats"] = f"Give the number of seats, a whole number from 1 to {schemas.SEATS_MAX:,}."
    else:
        data["seats"] = int(seats)
    return data, errors


def blank() -> dict[str, Any]:
    return {"location": "online", "seats": "20", "is_published": True}


def values_of(event: schemas.TrainingEvent) -> dict[str, Any]:
    closes = event.registration_closes_at
    return {
        "title": event.title, "description": event.description, "location": event.location,
        "starts_at": f"{event.starts_at:{_FORMAT}}", "ends_at": f"{event.ends_at:{_FORMAT}}",
        "registration_closes_at": f"{closes:{_FORMAT}}" if closes else "", "seats": str(event.seats),
        "is_published": event.is_published,
    }
