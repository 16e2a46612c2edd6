"""The operators' form for a call: the form's text fields to the call's fields (``parse``) and back
(``values_of``). Lists are typed as text: cut-offs and countries separated by commas, durations as
"1, 2, 3", GPU-hours offered as one "partition = hours" per line.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from jaif.calls.schemas import CallIn, CallOut, CallPatch
from jaif.web.display import SECTORS

KINDS = [("playground", "Playground"), ("fast_lane", "Fast Lane"), ("large_scale", "Large Scale"),
         ("inference_only", "Inference only"), ("custom", "Custom")]
MODES = [("automatic", "Automatic (first come, first served)"), ("technical", "Technical review"),
         ("peer", "Technical and peer review")]
_SPLIT = re.compile(r"[\s,;]+")
_FIELD_OF = {"offered_gpu_hours": "offered_gpu_hours", "durations_months": "durations_months",
             "eligible_sectors": "sectors"}


def _items(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text.strip()) if t]


def _optional(text: str) -> str | None:
    text = re.sub(r"[\s,_']", "", text)
    return text or None


def _hours(text: str, errors: dict[str, str]) -> dict[str, str]:
    offered = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        partition, sep, hours = line.partition("=")
        if not sep or not partition.strip():
            errors["offered_gpu_hours"] = f"Write one 'partition = GPU-hours' per line, not {line.strip()!r}."
            return {}
        offered[partition.strip()] = re.sub(r"[\s,_']", "", hours)
    return offered


def _raw(form: dict[str, str], errors: dict[str, str]) -> dict:
    return {
        "name": form.get("name", "").strip(),
        "kind": form.get("kind", ""),
        "description": form.get("description", "").strip(),
        "opens_at": form.get("opens_at", "").strip() or None,
        "closes_at": form.get("closes_at", "").strip() or None,
        "cutoffs": _items(form.get("cutoffs", "")),
        "offered_gpu_hours": _hours(form.get("offered_gpu_hours", ""), errors),
        "offered_tokens": _optional(form.get("offered_tokens", "")) or "0",
        "max_gpu_hours": _optional(form.get("max_gpu_hours", "")),
        "min_gpu_hours": _optional(form.get("min_gpu_hours", "")),
        "max_tokens": _optional(form.get("max_tokens", "")),
        "durations_months": _items(form.get("durations_months", "")),
        "eligible_sectors": [s for s in SECTORS if form.get(f"sector_{s}")],
        "eligible_countries": [c.upper() for c in _items(form.get("eligible_countries", ""))] or None,
        "review_mode": form.get("review_mode", ""),
        "target_days_to_access": form.get("target_days_to_access", "").strip(),
        "is_active": bool(form.get("is_active")),
    }


def form_field(call_field: str) -> str:
    return _FIELD_OF.get(call_field, call_field)


def parse(form: dict[str, str], *, new: bool) -> tuple[CallIn | CallPatch | None, dict[str, str]]:
    """The call the form describes (CallIn for a new one, CallPatch with every field for a change), or
    None and an error per form field."""
    errors: dict[str, str] = {}
    data = _raw(form, errors)
    if new:
        data["slug"] = form.get("slug", "").strip()
    elif data["opens_at"] is None:
        del data["opens_at"]  # a call that opened keeps its opening time
    if errors:
        return None, errors
    try:
        return (CallIn if new else CallPatch).model_validate(data), {}
    except ValidationError as exc:
        for error in exc.errors():
            name = form_field(str(error["loc"][0])) if error["loc"] else "name"
            errors.setdefault(name, error["msg"].removeprefix("Value error, ").rstrip(".") + ".")
        return None, errors


def _plain(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:g}"


def values_of(call: CallOut) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {
        "slug": call.slug, "name": call.name, "kind": call.kind, "description": call.description,
        "opens_at": call.opens_at.strftime("%Y-%m-%dT%H:%M"),
        "closes_at": call.closes_at.strftime("%Y-%m-%dT%H:%M") if call.closes_at else "",
        "cutoffs": ", ".join(call.cutoffs),
        "offered_gpu_hours": "\n".join(f"{p} = {_plain(h)}" for p, h in call.offered_gpu_hours.items()),
        "offered_tokens": str(call.offered_tokens), "max_gpu_hours": _plain(call.max_gpu_hours),
        "min_gpu_hours": _plain(call.min_gpu_hours),
        "max_tokens": str(call.max_tokens) if call.max_tokens is not None else "",
        "durations_months": ", ".join(str(m) for m in call.durations_months),
        "eligible_countries": ", ".join(call.eligible_countries or []),
        "review_mode": call.review_mode, "target_days_to_access": str(call.target_days_to_access),
        "is_active": call.is_active,
    }
    for sector in SECTORS:
        values[f"sector_{sector}"] = sector in call.eligible_sectors
    return values


def blank() -> dict[str, str | bool]:
    """A new call's form: technical review, a target of 10 working days, active."""
    return {"review_mode": "technical", "kind": "custom", "target_days_to_access": "10", "is_active": True,
            "offered_tokens": "0"}
