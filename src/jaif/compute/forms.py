"""The job form of the portal (``/jobs/new``, compute/pages.py): its fields and their defaults, the posted
form with the bytes of a chosen script file (``PostedForm``), the chosen template's parameter fields, and
``parse``: the arguments of compute/service.py's ``submit_job`` from the form, with an error per field
that is not filled in right (whole numbers, a project, a script or the template's required fields).
A template's file parameter (batch-inference's ``input``) and the job's input files (``inputs``, any number)
are chosen from the user's projects' files; the service checks each is the chosen project's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from jaif.compute import templates
from jaif.compute.site import Partition

FIELDS = ("project", "partition", "gpus", "nodes", "time", "name", "template")
DEFAULTS = {"gpus": "1", "nodes": "1", "time": "60", "name": "", "template": "", "script": ""}
# The service's ``param`` values that name a field of this form; a refusal about another is shown above it.
ERROR_FIELDS = frozenset({"project", "partition", "gpus", "nodes", "time", "script", "params", "template", "inputs"})
WHOLE = {
    "gpus": "Enter a whole number of GPUs per node, 0 or more (e.g. 1).",
    "nodes": "Enter a whole number of nodes, 1 or more.",
    "time": "Enter the time limit as a whole number of minutes, 1 or more (e.g. 60).",
}


@dataclass
class Posted:
    """A posted job form: its text fields, and the bytes of the script file when one was chosen."""

    fields: dict[str, str]
    script_file: bytes | None
    inputs: list[str] = field(default_factory=list)  # ids of the project files chosen as the job's inputs


async def _posted(request: Request) -> Posted:
    form = await request.form()
    upload = form.get("script_file")
    data = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    inputs = [v.strip() for v in form.getlist("inputs") if isinstance(v, str) and v.strip()]
    return Posted({k: v for k, v in form.items() if isinstance(v, str)}, data or None, list(dict.fromkeys(inputs)))


PostedForm = Annotated[Posted, Depends(_posted)]


def param_field(key: str) -> str:
    return f"param_{key}"


def error_field(param: str | None) -> str:
    """The form's field a refusal of the service is about (``params.input`` -> ``param_input``), else "form"."""
    if param and param.startswith("params.") and param_field(param.removeprefix("params.")) != param_field(""):
        return param_field(param.removeprefix("params."))
    return param if param in ERROR_FIELDS else "form"


def template_of(name: str) -> templates.JobTemplate | None:
    return templates.TEMPLATES.get(name)


def with_params(values: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """``values`` with the chosen template's parameter fields: as typed, else their defaults."""
    tpl = template_of(values.get("template", ""))
    for key, spec in (tpl.params.items() if tpl else ()):
        values[param_field(key)] = fields.get(param_field(key), spec.default or "")
    return values


def _whole(text: str) -> int | None:
    text = text.strip().replace(",", "").replace("_", "")
    return int(text) if text.isascii() and text.isdigit() else None  # not "²", which isdigit() takes


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _limits(partition: Partition, numbers: dict[str, int | None]) -> dict[str, str]:
    """The partition's limits that the numbers go beyond, in the form's words."""
    p, errors = partition, {}
    gpus, nodes, time = numbers["gpus"], numbers["nodes"], numbers["time"]
    if gpus is not None and gpus > p.gpus_per_node:
        errors["gpus"] = (f"Partition {p.name} has {_plural(p.gpus_per_node, 'GPU')} per node: ask for at most "
                          f"{p.gpus_per_node} here, and for more nodes if the job needs more GPUs.")
    if nodes is not None and nodes > p.nodes:
        errors["nodes"] = f"Partition {p.name} has {_plural(p.nodes, 'node')}: ask for at most {p.nodes}."
    if time is not None and p.max_walltime_min is not None and time > p.max_walltime_min:
        errors["time"] = f"Partition {p.name} runs a job for at most {p.max_walltime_min:,} minutes: ask for no more."
    return errors


def _numbers(values: dict[str, str], errors: dict[str, str]) -> dict[str, int | None]:
    numbers: dict[str, int | None] = {}
    for name, message in WHOLE.items():
        number = _whole(values[name])
        if number is None or number < (0 if name == "gpus" else 1):
            errors[name] = message
            number = None
        numbers[name] = number
    return numbers


def parse(values: dict[str, str], posted: Posted, partitions: dict[str, Partition]) -> tuple[dict, dict[str, str]]:
    """The arguments of ``submit_job`` from the form, and an error per field that is not filled in right,
    the limits of the chosen partition (of ``partitions``, the site's) included: every one at once, in the
    form's words, beside its field. What only the service can tell (the project's allocation) comes after,
    once the form is right."""
    errors: dict[str, str] = {}
    numbers = _numbers(values, errors)
    if not values["project"]:
        errors["project"] = "Choose the project the job is charged to."
    if values["partition"] not in partitions:
        errors["partition"] = f"Choose one of the partitions: {', '.join(sorted(partitions)) or 'none'}."
    else:
        errors |= _limits(partitions[values["partition"]], numbers)
    tpl = template_of(values["template"])
    args: dict[str, object] = {
        "project_name": values["project"], "partition": values["partition"], "gpus": numbers["gpus"],
        "nodes": numbers["nodes"], "time_min": numbers["time"], "name": values["name"] or None,
        "inputs": posted.inputs,
    }
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
