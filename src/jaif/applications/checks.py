"""Is an application complete, within the call's limits, and eligible? Every problem names its field.

``problems`` never raises: the portal shows the list beside the form while the applicant types, and
submission refuses with all of them at once (``SubmissionRefused``).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jaif.access.models import Organisation, Project
from jaif.access.visibility import is_pi
from jaif.applications.models import AiActRisk, Application, ApplicationKind
from jaif.calls.eligibility import Problem, normalise_country, organisation_problems, window_problem
from jaif.calls.models import AccessCall
from jaif.errors import InvalidRequest

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SubmissionRefused(InvalidRequest):
    """Submission refused; ``problems`` lists every field at fault with what to do about it."""

    code = "submission_refused"

    def __init__(self, problems: list[Problem]) -> None:
        text = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(f"the application cannot be submitted: {text}", param=problems[0].field)
        self.problems = problems


def find_organisation(session: Session, name: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(func.lower(Organisation.name) == name.strip().lower()))


def _organisation(session: Session, application: Application) -> tuple[str, str, str] | None:
    """(name, country, sector) of the organisation the application is made for, known or proposed."""
    if application.organisation_id is not None:
        org = session.get(Organisation, application.organisation_id)
        if org is not None:
            return org.name, org.country, org.sector
    proposal = application.organisation_proposal
    if proposal:
        known = find_organisation(session, proposal["name"])
        if known is not None:
            return known.name, known.country, known.sector
        return proposal["name"], normalise_country(proposal["country"]), proposal["sector"]
    return None


def _text_problems(application: Application) -> list[Problem]:
    found = []
    if not application.title.strip():
        found.append(Problem("title", "give the project a title"))
    if len(application.abstract.strip()) < 50:
        found.append(Problem("abstract", "describe the project in an abstract of at least 50 characters"))
    if not application.domain.strip():
        found.append(Problem("domain", "name the scientific or business domain, e.g. 'language models'"))
    for email in application.team:
        if not _EMAIL.match(email):
            found.append(Problem("team", f"{email!r} is not an e-mail address"))
            break
    if application.ai_act_risk is None:
        found.append(Problem("ai_act_risk", "assess the AI Act risk: minimal, limited, high or unacceptable"))
    elif application.ai_act_risk == AiActRisk.unacceptable:
        found.append(Problem("ai_act_risk", "practices of unacceptable risk are prohibited by the AI Act (Art. 5)"))
    elif application.ai_act_risk == AiActRisk.high and not application.ai_act_notes.strip():
        found.append(Problem("ai_act_notes", "for a high-risk system, describe how the AI Act duties are met"))
    if application.personal_data and not application.datasets.strip():
        found.append(Problem("datasets", "describe the datasets and how their personal data are protected"))
    return found


def _resource_problems(call: AccessCall, application: Application) -> list[Problem]:
    found = []
    hours = application.requested_gpu_hours or {}
    offered = call.offered_gpu_hours or {}
    for partition, amount in hours.items():
        if partition not in offered:
            where = ", ".join(sorted(offered)) or "no partition"
            found.append(Problem("requested_gpu_hours", f"this call offers GPU-hours on {where}, not on {partition}"))
        elif amount < 0:
            found.append(Problem("requested_gpu_hours", "GPU-hours must not be negative"))
    total = sum(v for v in hours.values() if v > 0)
    if total == 0 and application.requested_tokens <= 0:
        found.append(Problem("requested_gpu_hours", "request GPU-hours, inference tokens, or both"))
    if call.max_gpu_hours is not None and total > call.max_gpu_hours:
        found.append(Problem("requested_gpu_hours", f"this call grants at most {call.max_gpu_hours:g} GPU-hours"))
    if call.min_gpu_hours is not None and 0 < total < call.min_gpu_hours:
        found.append(Problem("requested_gpu_hours", f"this call is for {call.min_gpu_hours:g} GPU-hours or more"))
    if application.requested_tokens > 0 and call.offered_tokens <= 0:
        found.append(Problem("requested_tokens", "this call offers no inference tokens"))
    elif call.max_tokens is not None and application.requested_tokens > call.max_tokens:
        found.append(Problem("requested_tokens", f"this call grants at most {call.max_tokens} tokens"))
    months = application.duration_months
    if months is None:
        if application.kind != ApplicationKind.top_up:
            found.append(Problem("duration_months", "choose how many months the project needs"))
    elif call.durations_months and months not in call.durations_months:
        choices = ", ".join(str(m) for m in call.durations_months)
        found.append(Problem("duration_months", f"this call grants {choices} months; choose one of those"))
    return found


def _project_problems(session: Session, application: Application) -> list[Problem]:
    if application.kind == ApplicationKind.new:
        name = application.project_name
        if name and session.scalar(select(Project.id).where(Project.name == name)):
            return [Problem("project_name", f"a project named {application.project_name!r} exists; choose another")]
        return []
    if application.project_id is None:
        return [Problem("project_id", "name the project to renew or top up")]
    if not is_pi(session, user_id=application.applicant_id, project_id=application.project_id):
        return [Problem("project_id", "only a principal investigator of the project may ask to renew or top it up")]
    return []


def problems(session: Session, application: Application, *, now: datetime) -> list[Problem]:
    """Everything that stands in the way of submitting ``application`` now; empty when it may go."""
    call = application.call
    found = []
    closed = window_problem(call.opens_at, call.closes_at, call.is_active, now)
    if closed is not None:
        found.append(closed)
    found += _text_problems(application)
    found += _resource_problems(call, application)
    found += _project_problems(session, application)
    org = _organisation(session, application)
    if org is None:
        found.append(Problem("organisation", "name the organisation the project is carried out at"))
    else:
        name, country, sector = org
        found += organisation_problems(
            name=name,
            country=country,
            sector=sector,
            eligible_countries=call.eligible_countries,
            eligible_sectors=call.eligible_sectors,
        )
    return found
