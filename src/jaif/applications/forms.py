"""The application form, step by step: which fields each step has, how a step's form becomes the draft's
fields (``parse``), and how the draft is shown in the form again (``values_of``).

Each step's form is saved as it is sent: the fields that are valid are saved, each one that is not gets
its error next to it and keeps what was typed. Nothing is lost. Submission then checks the whole
application (applications/checks.py); its problems name the application's fields, which ``form_name``
turns into the form's field names and ``STEP_OF`` into the step to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from jaif.applications.schemas import ApplicationOut, DraftIn
from jaif.web.display import RISK_LABELS, SECTORS

STEPS = [
    ("proposal", "Proposal"),
    ("team", "Organisation and team"),
    ("resources", "Resources"),
    ("data", "Data"),
    ("ai-act", "AI Act"),
    ("submit", "Check and submit"),
]
STEP_NAMES = [name for name, _ in STEPS]
STEP_OF = {
    "title": "proposal", "project_name": "proposal", "abstract": "proposal", "domain": "proposal",
    "organisation": "team", "organisation_id": "team", "team": "team",
    "requested_gpu_hours": "resources", "requested_tokens": "resources", "duration_months": "resources",
    "datasets": "data", "personal_data": "data",
    "ai_act_risk": "ai-act", "ai_act_notes": "ai-act",
}
_FORM_NAME = {"organisation": "organisation_choice", "organisation_id": "organisation_choice",
              "requested_gpu_hours": "gpu_hours"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER_JUNK = re.compile(r"[\s,_']")


def form_name(application_field: str) -> str:
    """The form field an application field's problem is shown next to."""
    return _FORM_NAME.get(application_field, application_field)


def next_step(step: str) -> str:
    return STEP_NAMES[min(STEP_NAMES.index(step) + 1, len(STEP_NAMES) - 1)]


@dataclass
class Parsed:
    """What a step's form gave: the draft fields to save, and an error per form field that was not valid."""

    fields: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _number(raw: str, *, whole: bool) -> float | int | None:
    text = _NUMBER_JUNK.sub("", raw or "")
    if not text:
        return None
    value = int(text) if whole else float(text)  # ValueError for anything else
    if value < 0:
        raise ValueError("negative")
    return value


def _proposal(form: dict[str, str], out: Parsed) -> None:
    for name in ("title", "project_name", "abstract", "domain"):
        out.fields[name] = form.get(name, "").strip()


def _team(form: dict[str, str], out: Parsed) -> None:
    choice = form.get("organisation_choice", "")
    if choice == "new":
        proposal = {"name": form.get("org_name", "").strip(), "sector": form.get("org_sector", ""),
                    "country": form.get("org_country", "").strip().upper()}
        if not proposal["name"]:
            out.errors["org_name"] = "Give the name of the organisation."
        if proposal["sector"] not in SECTORS:
            out.errors["org_sector"] = "Choose the organisation's sector."
        if not re.fullmatch(r"[A-Z]{2}", proposal["country"]):
            out.errors["org_country"] = "Give the country as a two-letter code, e.g. DE."
        if not out.errors:
            out.fields["organisation"] = proposal
    elif choice:
        out.fields["organisation_id"] = choice
    emails = [e for e in re.split(r"[\s,;]+", form.get("team", "")) if e]
    bad = [e for e in emails if not _EMAIL.match(e)]
    if bad:
        out.errors["team"] = f"{bad[0]!r} is not an e-mail address; give one address per line."
    else:
        out.fields["team"] = emails


def _resources(form: dict[str, str], out: Parsed, partitions: list[str]) -> None:
    hours = {}
    for partition in partitions:
        name = f"gpu_hours.{partition}"
        try:
            hours[partition] = float(_number(form.get(name, ""), whole=False) or 0.0)
        except ValueError:
            out.errors[name] = "Enter a number of GPU-hours, 0 or more (e.g. 1000), or leave it empty."
    if not any(f.startswith("gpu_hours.") for f in out.errors):
        out.fields["requested_gpu_hours"] = {p: h for p, h in hours.items() if h > 0}
    try:
        out.fields["requested_tokens"] = int(_number(form.get("requested_tokens", ""), whole=True) or 0)
    except ValueError:
        out.errors["requested_tokens"] = "Enter a whole number of tokens, 0 or more (e.g. 1000000), or leave it empty."
    duration = form.get("duration_months", "")
    if duration:
        if duration.isascii() and duration.isdigit():
            out.fields["duration_months"] = int(duration)
        else:
            out.errors["duration_months"] = "Choose a duration."


def _data(form: dict[str, str], out: Parsed) -> None:
    out.fields["datasets"] = form.get("datasets", "").strip()
    out.fields["personal_data"] = bool(form.get("personal_data"))


def _ai_act(form: dict[str, str], out: Parsed) -> None:
    risk = form.get("ai_act_risk", "")
    if risk and risk not in RISK_LABELS:
        out.errors["ai_act_risk"] = "Choose one of the risk levels."
    elif risk:
        out.fields["ai_act_risk"] = risk
    out.fields["ai_act_notes"] = form.get("ai_act_notes", "").strip()


def _validated(out: Parsed) -> Parsed:
    """Check each field against the draft schema on its own, so that one bad field spoils no other."""
    for name in list(out.fields):
        try:
            DraftIn.model_validate({name: out.fields[name]})
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            target = "org_name" if name == "organisation" else form_name(name)
            if name == "project_name" and "pattern" in message:
                message = "Use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
            out.errors[target] = message.rstrip(".") + "."
            del out.fields[name]
    return out


def parse(step: str, form: dict[str, str], *, partitions: list[str]) -> Parsed:
    """The draft fields and the errors of one step's form."""
    out = Parsed()
    if step == "proposal":
        _proposal(form, out)
    elif step == "team":
        _team(form, out)
    elif step == "resources":
        _resources(form, out, partitions)
    elif step == "data":
        _data(form, out)
    elif step == "ai-act":
        _ai_act(form, out)
    return _validated(out)


def _plain(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def values_of(application: ApplicationOut, partitions: list[str]) -> dict[str, str | bool]:
    """The saved draft as the form's fields show it."""
    proposal = application.organisation_proposal
    values: dict[str, str | bool] = {
        "title": application.title, "project_name": application.project_name, "abstract": application.abstract,
        "domain": application.domain, "team": "\n".join(application.team),
        "organisation_choice": "new" if proposal else (application.organisation_id or ""),
        "org_name": proposal.name if proposal else "", "org_sector": proposal.sector if proposal else "",
        "org_country": proposal.country if proposal else "",
        "requested_tokens": str(application.requested_tokens) if application.requested_tokens else "",
        "duration_months": str(application.duration_months or ""),
        "datasets": application.datasets, "personal_data": application.personal_data,
        "ai_act_risk": application.ai_act_risk or "", "ai_act_notes": application.ai_act_notes,
    }
    for partition in partitions:
        hours = application.requested_gpu_hours.get(partition)
        values[f"gpu_hours.{partition}"] = _plain(hours) if hours else ""
    return values
