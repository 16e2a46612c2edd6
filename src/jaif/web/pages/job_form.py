"""Submitting a job from the portal (``/jobs/new``): project, partition, GPUs, nodes, time limit, and a
template with its parameters or a raw batch script (typed, or a file).

The page checks only that the form is filled in (whole numbers, a project, a script or the template's
required fields); everything else (partition, resources, the script being text, the allocation) is
compute/service.py's ``submit_job``, the same as for the REST API and the CLI. A refusal comes back with
its message next to the field it is about and everything typed kept; nothing is submitted.

Choosing another template re-renders the form with that template's fields (the *Show its fields*
button, or *Submit* after the choice changed); nothing typed is lost and nothing is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.compute import service as jobs
from jaif.compute import templates
from jaif.errors import JaifError
from jaif.web.deps import DB, PageUser
from jaif.web.pages.common import attempt, render, sentence
from jaif.web.pages.jobs import compute_of, my_projects
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)

FIELDS = ("project", "partition", "gpus", "nodes", "time", "name", "template")
DEFAULTS = {"gpus": "1", "nodes": "1", "time": "60", "name": "", "template": "", "script": ""}
# The service's ``param`` values that name a field of this form; a refusal about another is shown above it.
ERROR_FIELDS = frozenset({"project", "partition", "gpus", "nodes", "time", "script", "params", "template"})
WHOLE = {
    "gpus": "Enter a whole number of GPUs per node, 0 or more (e.g. 1).",
    "nodes": "Enter a whole number of nodes, 1 or more.",
    "time": "Enter the time limit as a whole number of minutes (e.g. 60).",
}


@dataclass
class Posted:
    """A posted job form: its text fields, and the bytes of the script file when one was chosen."""

    fields: dict[str, str]
    script_file: bytes | None


async def _posted(request: Request) -> Posted:
    form = await request.form()
    upload = form.get("script_file")
    data = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    return Posted({k: v for k, v in form.items() if isinstance(v, str)}, data or None)


PostedForm = Annotated[Posted, Depends(_posted)]


def param_field(key: str) -> str:
    return f"param_{key}"


def _template(name: str) -> templates.JobTemplate | None:
    return templates.TEMPLATES.get(name)


def _with_params(values: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """``values`` with the chosen template's parameter fields: as typed, else their defaults."""
    tpl = _template(values.get("template", ""))
    for key, spec in (tpl.params.items() if tpl else ()):
        values[param_field(key)] = fields.get(param_field(key), spec.default or "")
    return values


def _form(request: Request, session: Session, actor: Actor, *, values: dict[str, str], errors=None,
          notice: str = "", status_code: int = 200) -> Response:
    compute = compute_of(request)
    partitions = [
        (p.name, f"{p.name}: {p.nodes:,} node{'s' if p.nodes != 1 else ''} of {p.gpus_per_node} × {p.gpu_model}"
         + (f", at most {p.max_walltime_min} min" if p.max_walltime_min else ""))
        for p in compute.partitions().values()
    ]
    choices = [("", "None: my own batch script")] + [(t.name, f"{t.name}: {t.summary}")
                                                     for t in templates.TEMPLATES.values()]
    return render(
        request, "jobs/new.html", status_code, section="jobs", values=values, errors=errors or {}, notice=notice,
        projects=[(p, p) for p in my_projects(session, actor)], partitions=partitions, choices=choices,
        chosen_template=_template(values.get("template", "")), param_field=param_field,
    )


@router.get("/jobs/new")
def new_job(request: Request, session: DB, actor: PageUser, project: Annotated[str, Query(max_length=200)] = "",
            template: Annotated[str, Query(max_length=50)] = "") -> Response:
    partitions = list(compute_of(request).partitions())
    values = {**DEFAULTS, "project": project, "partition": partitions[0] if partitions else "",
              "template": template if _template(template) else ""}
    return _form(request, session, actor, values=_with_params(values, {}))


def _whole(text: str) -> int | None:
    text = text.strip().replace(",", "").replace("_", "")
    return int(text) if text.isdigit() else None


def _parse(values: dict[str, str], posted: Posted) -> tuple[dict, dict[str, str]]:
    """The arguments of ``submit_job`` from the form, and an error per field that is not filled in right."""
    errors: dict[str, str] = {}
    numbers = {}
    for name, message in WHOLE.items():
        numbers[name] = _whole(values[name])
        if numbers[name] is None:
            errors[name] = message
    if not values["project"]:
        errors["project"] = "Choose the project the job is charged to."
    if not values["partition"]:
        errors["partition"] = "Choose a partition."
    tpl = _template(values["template"])
    args = {"project_name": values["project"], "partition": values["partition"], "gpus": numbers["gpus"],
            "nodes": numbers["nodes"], "time_min": numbers["time"], "name": values["name"] or None}
    if tpl is not None:
        params = {key: values[param_field(key)].strip() for key in tpl.params}
        for key, spec in tpl.params.items():
            if spec.default is None and not params[key]:
                errors[param_field(key)] = f"Give the {key}: {spec.help}."
        args |= {"template": tpl.name, "params": {k: v for k, v in params.items() if v}}
    elif posted.script_file is not None:
        args["script"] = posted.script_file
    elif values["script"]:
        args["script"] = values["script"].replace("\r\n", "\n")
    else:
        errors["script"] = "Type or paste a batch script, choose a script file, or choose a template."
    return args, errors


@router.post("/jobs/new")
def submit_job(request: Request, session: DB, actor: PageUser, posted: PostedForm) -> Response:
    fields = posted.fields
    values = {**DEFAULTS, **{k: fields.get(k, "").strip() for k in FIELDS}, "script": fields.get("script", "")}
    if values["template"] and _template(values["template"]) is None:
        values["template"] = ""
    _with_params(values, fields)
    if fields.get("action") == "choose" or values["template"] != fields.get("shown", values["template"]):
        notice = "The fields of the template you chose are below; nothing is submitted yet."
        return _form(request, session, actor, values=values, notice=notice)
    args, errors = _parse(values, posted)
    if errors:
        return _form(request, session, actor, values=values, errors=errors, status_code=400)
    compute = compute_of(request)
    try:  # in a savepoint: a refusal leaves nothing behind (a batch-inference job's key, say)
        job = attempt(session, lambda: jobs.submit_job(session=session, compute=compute, actor=actor, **args))
    except JaifError as exc:
        field = exc.param if exc.param in ERROR_FIELDS else "form"
        if field == "script" and posted.script_file is not None and _template(values["template"]) is None:
            field = "script_file"
        return _form(request, session, actor, values=values, errors={field: sentence(exc.message)},
                     status_code=exc.status)
    flash(request, f"Job {job.job_id} is submitted to partition {job.partition}.", "success")
    return RedirectResponse(f"/jobs/{quote(job.job_id, safe='')}", status_code=303)
