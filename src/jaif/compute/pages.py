"""Compute jobs in the portal: the list (``/jobs``: the user's projects, operators every project, filtered
by project and state, 50 a page; ``/projects/{id}/jobs``: one project's), a job's page with its stdout and
stderr (followed by /static/job.js while it runs) and cancelling it; submitting one (``/jobs/new``: project,
partition, GPUs, nodes, time limit, and a template with its parameters or a raw batch script, typed or a
file; the form's fields are compute/forms.py).

Everything goes through compute/service.py, as the REST API and the CLI do: a job of a project the user
is not a member of does not exist for them (404); operators see and cancel every job. A refused submission
comes back with its message next to the field it is about and everything typed kept; nothing is submitted.
Choosing another template re-renders the form with that template's fields (the *Show its fields* button,
or *Submit* after the choice changed); nothing typed is lost and nothing is submitted.

A job's files (``/jobs/{id}/files?path=``): the folders of its directory, and a file of it downloaded
(``/jobs/{id}/files/content?path=``), through compute/workspace.py's strict path handling (no ``..``, no
symbolic link followed, only the job's own files, a bounded listing); the top of its directory is on the
job's page, followed while it runs. Its input files are chosen from its project's files on the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.models import Project
from jaif.access.schemas import Actor
from jaif.compute import forms, templates
from jaif.compute import service as jobs
from jaif.compute.backend import Compute
from jaif.compute.deps import compute_of, download
from jaif.compute.models import Job, JobState
from jaif.compute.schemas import JobFiles, JobOut
from jaif.db.base import utcnow
from jaif.errors import JaifError
from jaif.files import service as files
from jaif.identity import service as identity
from jaif.identity import team
from jaif.identity.deps import PageUser
from jaif.web.deps import DB
from jaif.web.display import render, sentence, size
from jaif.web.forms import attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)

JOB_STATES = {
    "pending": "Pending", "running": "Running", "completed": "Completed", "failed": "Failed",
    "cancelled": "Cancelled", "timeout": "Timed out",
}
LOG_TAIL = 64 * 1024  # the most of each log a job's page shows: its end
PAGE_FILES = 50  # entries of the job's directory its page lists (all of them: /jobs/{id}/files)


def duration(seconds: float) -> str:
    """3725 -> '1 h 02 min'; 75 -> '1 min 15 s'; 9 -> '9 s'."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def minutes(value: int) -> str:
    """A time limit: 90 -> '90 min (1 h 30 min)'."""
    return f"{value} min" + (f" ({duration(value * 60)})" if value >= 60 else "")


@dataclass
class JobRow:
    """A job as the pages show it: the API's view, how long it has run, what the accounting charged."""

    job: JobOut
    elapsed: str
    charged_gpu_hours: float | None  # None: not imported by the accounting yet

    @property
    def finished(self) -> bool:
        return JobState(self.job.state).finished


def _elapsed(job: Job, now: datetime) -> str:
    if job.started_at is None:
        return "—"
    return duration(((job.ended_at or now) - job.started_at).total_seconds())


def rows_of(session: Session, found: list[Job]) -> list[JobRow]:
    emails = jobs.emails(session, found)
    charged = jobs.charged_gpu_hours(session, found)
    now = utcnow()
    return [JobRow(jobs.job_out(j, emails.get(j.user_id or "")), _elapsed(j, now), charged.get(j.id)) for j in found]


def my_projects(session: Session, actor: Actor) -> list[str]:
    """The names of the projects ``actor`` is a member of (an operator's too: not every project)."""
    if actor.user_id is None:
        return []
    return [m.project_name for m in identity.me(session=session, actor=actor).projects]


FILE_CHOICES = 200  # files of each project the job form offers (the newest)


def file_choices(session: Session, actor: Actor) -> list[tuple[str, str]]:
    """The files of the user's projects, as the job form offers them: (id, "project: name (size, id)")."""
    if actor.user_id is None:
        return []
    choices = []
    for member in identity.me(session=session, actor=actor).projects:
        for f in files.list_files(session=session, project_id=member.project_id, limit=FILE_CHOICES).data:
            choices.append((f.id, f"{member.project_name}: {f.filename} ({size(f.bytes)}, {f.id})"))
    return choices


def _list_page(request: Request, session: Session, actor: Actor, *, project_name: str = "", state: str = "",
               page: str = "1", project: Project | None = None, errors: dict | None = None,
               status_code: int = 200) -> Response:
    compute = compute_of(request)
    filters = {"project_name": project_name or None, "state": state or None}
    total = jobs.count_jobs(session=session, compute=compute, actor=actor, **filters)
    pager = Pager.of(request, page=page, total=total)
    found = jobs.list_jobs(session=session, compute=compute, actor=actor, **filters, limit=pager.size,
                           offset=pager.offset)
    return render(
        request, "compute/list.html", status_code, section="jobs", rows=rows_of(session, found), pager=pager,
        project=project, chosen={"project": project_name, "state": state}, errors=errors or {},
        projects=[(p, p) for p in my_projects(session, actor)], is_operator=actor.is_operator,
        job_states=JOB_STATES, minutes=minutes,
    )


Filter = Annotated[str, Query(max_length=200)]


@router.get("/jobs")
def job_list(request: Request, session: DB, actor: PageUser, project: Filter = "", state: Filter = "",
             page: Annotated[str, Query(max_length=12)] = "1") -> Response:
    state = state if state in JOB_STATES else ""
    try:
        return _list_page(request, session, actor, project_name=project.strip(), state=state, page=page)
    except JaifError as exc:  # no such project (or not yours): say so beside the filter
        if exc.status != 404:
            raise
        return _list_page(request, session, actor, state=state, errors={"project": sentence(exc.message)},
                          status_code=404)


@router.get("/projects/{project_id}/jobs")
def project_jobs(request: Request, session: DB, actor: PageUser, project_id: str, state: Filter = "",
                 page: Annotated[str, Query(max_length=12)] = "1") -> Response:
    project = team.require_member(session=session, actor=actor, project_id=project_id)  # 404 for others
    state = state if state in JOB_STATES else ""
    return _list_page(request, session, actor, project_name=project.name, state=state, page=page, project=project)


# --- submitting a job: /jobs/new, mounted before /jobs/{job_id} -------------------------------------------


def _new_job_form(request: Request, session: Session, actor: Actor, *, values: dict[str, str], errors=None,
                  notice: str = "", status_code: int = 200, inputs: list[str] | None = None) -> Response:
    compute = compute_of(request)
    partitions = [
        (p.name, f"{p.name}: {p.nodes:,} node{'s' if p.nodes != 1 else ''} of {p.gpus_per_node} × {p.gpu_model}"
         + (f", at most {p.max_walltime_min} min" if p.max_walltime_min else ""))
        for p in compute.partitions().values()
    ]
    choices = [("", "None: my own batch script")] + [(t.name, f"{t.name}: {t.summary}")
                                                     for t in templates.TEMPLATES.values()]
    return render(
        request, "compute/new.html", status_code, section="jobs", values=values, errors=errors or {}, notice=notice,
        projects=[(p, p) for p in my_projects(session, actor)], partitions=partitions, choices=choices,
        chosen_template=forms.template_of(values.get("template", "")), param_field=forms.param_field,
        file_choices=file_choices(session, actor), inputs=inputs or [],
    )


@router.get("/jobs/new")
def new_job(request: Request, session: DB, actor: PageUser, project: Annotated[str, Query(max_length=200)] = "",
            template: Annotated[str, Query(max_length=50)] = "") -> Response:
    partitions = list(compute_of(request).partitions())
    values = {**forms.DEFAULTS, "project": project, "partition": partitions[0] if partitions else "",
              "template": template if forms.template_of(template) else ""}
    return _new_job_form(request, session, actor, values=forms.with_params(values, {}))


@router.post("/jobs/new")
def submit_job(request: Request, session: DB, actor: PageUser, posted: forms.PostedForm) -> Response:
    fields = posted.fields
    values = {**forms.DEFAULTS, **{k: fields.get(k, "").strip() for k in forms.FIELDS},
              "script": fields.get("script", "")}
    if values["template"] and forms.template_of(values["template"]) is None:
        values["template"] = ""
    forms.with_params(values, fields)
    if fields.get("action") == "choose" or values["template"] != fields.get("shown", values["template"]):
        notice = "The fields of the template you chose are below; nothing is submitted yet."
        return _new_job_form(request, session, actor, values=values, notice=notice, inputs=posted.inputs)
    args, errors = forms.parse(values, posted, compute_of(request).partitions())
    if errors:
        return _new_job_form(request, session, actor, values=values, errors=errors, status_code=400,
                             inputs=posted.inputs)
    compute = compute_of(request)
    try:  # in a savepoint: a refusal leaves nothing behind (a batch-inference job's key, say)
        job = attempt(session, lambda: jobs.submit_job(session=session, compute=compute, actor=actor, **args))
    except JaifError as exc:
        field = forms.error_field(exc.param)
        if field == "script" and posted.script_file is not None and forms.template_of(values["template"]) is None:
            field = "script_file"
        return _new_job_form(request, session, actor, values=values, errors={field: sentence(exc.message)},
                             status_code=exc.status, inputs=posted.inputs)
    flash(request, f"Job {job.job_id} is submitted to partition {job.partition}.", "success")
    return RedirectResponse(f"/jobs/{quote(job.job_id, safe='')}", status_code=303)


# --- a job ---------------------------------------------------------------------------------------------------


@router.get("/jobs/{job_id}")
def job_page(request: Request, session: DB, actor: PageUser, job_id: str) -> Response:
    compute = compute_of(request)
    logs = jobs.job_logs(session=session, compute=compute, actor=actor, job_id=job_id, last=LOG_TAIL)  # refreshes
    job = jobs.get_job(session=session, compute=compute, actor=actor, job_id=job_id, refresh=False)
    row = rows_of(session, [job])[0]
    listing, why = _listing(session, compute, actor, job_id, "")
    return render(
        request, "compute/detail.html", section="jobs", row=row, job=row.job, logs=logs, params=job.params or {},
        record=jobs.recorded_energy(session, job),
        listing=listing, listing_refused=sentence(why.message) if why else "",
        stdout_cut=logs.stdout_offset > LOG_TAIL, stderr_cut=logs.stderr_offset > LOG_TAIL, tail_kib=LOG_TAIL // 1024,
        partition=compute.partitions().get(job.partition), job_states=JOB_STATES, minutes=minutes,
    )


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, session: DB, actor: PageUser, job_id: str) -> Response:
    compute = compute_of(request)
    try:
        job = attempt(session, lambda: jobs.cancel_job(session=session, compute=compute, actor=actor, job_id=job_id))
    except JaifError as exc:
        if exc.status == 404:
            raise
        flash(request, sentence(exc.message), "error")
    else:
        done = JobState(job.state).finished
        flash(request, f"Job {job.job_id} is {job.state}." if done else f"Job {job.job_id} is being cancelled.")
    return RedirectResponse(f"/jobs/{quote(job_id, safe='')}", status_code=303)


# --- a job's files -------------------------------------------------------------------------------------------

PathParam = Annotated[str, Query(max_length=4096)]


def _listing(session: Session, compute: Compute, actor: Actor, job_id: str,
             path: str) -> tuple[JobFiles | None, JaifError | None]:
    """A folder of the job's directory (the caller has found the job), or (None, why not) when it cannot be
    listed: its account is gone, or its directory is not the account's."""
    try:
        return jobs.job_files(session=session, compute=compute, actor=actor, job_id=job_id, path=path,
                              limit=PAGE_FILES), None
    except JaifError as exc:
        return None, exc


@router.get("/jobs/{job_id}/files")
def job_files(request: Request, session: DB, actor: PageUser, job_id: str, path: PathParam = "") -> Response:
    compute = compute_of(request)
    job = jobs.get_job(session=session, compute=compute, actor=actor, job_id=job_id, refresh=False)
    # 404: another project's job, or no such folder of the job's own; 400: a path with '..' and the like
    listing = jobs.job_files(session=session, compute=compute, actor=actor, job_id=job_id, path=path)
    parts = listing.path.split("/") if listing.path else []
    crumbs = [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]
    return render(request, "compute/files.html", section="jobs", job=jobs.job_out(job), listing=listing,
                  crumbs=crumbs, parent="/".join(parts[:-1]), limit=compute.settings.compute.max_listed_files)


@router.get("/jobs/{job_id}/files/content")
def job_file(request: Request, session: DB, actor: PageUser, job_id: str, path: PathParam = "") -> Response:
    opened = jobs.open_job_file(session=session, compute=compute_of(request), actor=actor, job_id=job_id, path=path)
    return download(*opened)
