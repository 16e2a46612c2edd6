"""job, slurm, accounting and report commands: compute on the supercomputer (docs/compute.md)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jaif.access import service as access
from jaif.access.schemas import CLI_ACTOR, Actor
from jaif.cli.common import JsonFlag, context, out
from jaif.compute import accounting, reports, sync, templates
from jaif.compute import service as jobs
from jaif.compute.backend import Compute, make_compute
from jaif.compute.models import JobState
from jaif.deployments import reports as deployment_reports
from jaif.errors import InvalidRequest

job_app = typer.Typer(help="Jobs on the compute partitions (Slurm, or the local executor).", no_args_is_help=True)
slurm_app = typer.Typer(help="Slurm accounts: sync from allocations, user names.", no_args_is_help=True)
accounting_app = typer.Typer(help="Job accounting: import finished jobs and charge them.", no_args_is_help=True)

def _compute(ctx: typer.Context) -> Compute:
    return make_compute(context(ctx).settings)


def _actor(session, email: str | None) -> Actor:
    if email is None:
        return CLI_ACTOR
    user = access.get_user(session=session, email=email)
    return Actor(user_id=user.id, email=user.email, role=user.role)


def _when(text: str | None, param: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--{param} {text!r} is not a date such as 2026-01-31", param=param) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@job_app.command("submit")
def job_submit(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project's name.")],
    partition: Annotated[str, typer.Option(help="The partition (`jaif job partitions`).")],
    gpus: Annotated[int, typer.Option(help="GPUs per node.")],
    time_min: Annotated[int, typer.Option("--time", help="Time limit in minutes.")],
    nodes: Annotated[int, typer.Option(help="Nodes.")] = 1,
    template: Annotated[str | None, typer.Option(help="A job template (`jaif job templates`).")] = None,
    param: Annotated[list[str] | None, typer.Option(help="A template parameter KEY=VALUE (repeatable).")] = None,
    script: Annotated[Path | None, typer.Option(help="A batch script file, instead of a template.")] = None,
    name: Annotated[str | None, typer.Option(help="The job's name.")] = None,
    user: Annotated[str | None, typer.Option("--as", help="Submit as this user (e-mail); default: operator.")] = None,
    input_ids: Annotated[list[str] | None, typer.Option(
        "--input", help="A project file's id (file-…), copied into the job's directory (repeatable).")] = None,
) -> None:
    """Submit a job; prints the scheduler's job id (Slurm's own) on the last line."""
    if script is not None and not script.is_file():
        raise InvalidRequest(f"--script {script}: no such file", param="script")
    compute = _compute(ctx)
    with context(ctx).session() as session:
        job = jobs.submit_job(
            session=session, compute=compute, actor=_actor(session, user), project_name=project,
            partition=partition, gpus=gpus, nodes=nodes, time_min=time_min, template=template,
            params=templates.parse_params(param or []), script=script.read_bytes() if script else None, name=name,
            inputs=input_ids or None,
        )
        out.print(f"submitted {job.name} to {job.partition} ({job.scheduler}) under account {job.account}; job id:")
    print(job.job_id)


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="The project's name; all projects if left out.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A project's jobs, newest first, with their state as the scheduler has it now."""
    compute = _compute(ctx)
    with context(ctx).session() as session:
        found = jobs.list_jobs(session=session, compute=compute, actor=CLI_ACTOR, project_name=project)
        views = [jobs.job_out(j, e) for j, e in _with_emails(session, found)]
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in views]))
        return
    table = Table("job id", "project", "name", "partition", "nodes x GPUs", "time", "state", "reason", "submitted")
    for v in views:
        table.add_row(v.job_id, v.project, v.name, v.partition, f"{v.nodes} x {v.gpus_per_node}",
                      f"{v.time_limit_min} min", v.state, v.reason, f"{v.submitted_at:%Y-%m-%d %H:%M}")
    out.print(table)


def _with_emails(session, found):
    emails = jobs.emails(session, found)
    return [(j, emails.get(j.user_id or "")) for j in found]


@job_app.command("show")
def job_show(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """One job: resources, state (with the scheduler's reason), times, working directory."""
    compute = _compute(ctx)
    with context(ctx).session() as session:
        job = jobs.get_job(session=session, compute=compute, actor=CLI_ACTOR, job_id=job_id)
        view = jobs.job_out(job, jobs.emails(session, [job]).get(job.user_id or ""))
    if as_json:
        print(view.model_dump_json())
        return
    for key, value in view.model_dump().items():
        out.print(f"{key:>15}: {value if value is not None else '-'}")


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a job (in Slurm: scancel)."""
    compute = _compute(ctx)
    with context(ctx).session() as session:
        job = jobs.cancel_job(session=session, compute=compute, actor=CLI_ACTOR, job_id=job_id)
        out.print(f"job {job.job_id}: {job.state}{f' ({job.reason})' if job.reason else ''}")


@job_app.command("logs")
def job_logs(
    ctx: typer.Context,
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """The job's stdout, then its stderr (with --follow: both as they grow, until the job ends)."""
    compute = _compute(ctx)
    at_out = at_err = 0
    said: set[str] = set()
    while True:
        with context(ctx).session() as session:
            logs = jobs.job_logs(session=session, compute=compute, actor=CLI_ACTOR, job_id=job_id,
                                 stdout_offset=at_out, stderr_offset=at_err)
        for refused in set(logs.refused) - said:  # a log that is a link, or not the job's: why it is not shown
            sys.stderr.write(f"jaif: {refused}\n")
            said.add(refused)
        sys.stdout.write(logs.stdout)
        sys.stderr.write(logs.stderr)
        sys.stdout.flush()
        at_out, at_err = logs.stdout_offset, logs.stderr_offset
        if not follow or (JobState(logs.state).finished and not logs.stdout and not logs.stderr):
            return
        if not logs.stdout and not logs.stderr:
            time.sleep(0.5)


@job_app.command("templates")
def job_templates() -> None:
    """The job templates and their parameters."""
    for tpl in templates.TEMPLATES.values():
        out.print(f"[bold]{tpl.name}[/bold]: {tpl.summary}")
        for key, spec in tpl.params.items():
            default = "required" if spec.default is None else f"default {spec.default!r}"
            out.print(f"    --param {key}=...  {spec.help} ({default})")


@job_app.command("partitions")
def job_partitions(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The partitions jobs may use: from the scheduler, completed by the site profile."""
    found = list(_compute(ctx).partitions().values())
    if as_json:
        print(json.dumps([vars(p) for p in found]))
        return
    table = Table("partition", "nodes", "GPUs/node", "GPU", "CPUs/node", "memory/node", "max time", "W/GPU",
                  "charged per")
    for p in found:
        table.add_row(p.name, str(p.nodes), str(p.gpus_per_node), p.gpu_model, str(p.cpus_per_node),
                      f"{p.memory_gb_per_node:g} GB", f"{p.max_walltime_min} min" if p.max_walltime_min else "-",
                      f"{p.gpu_power_w:g}", "node" if p.charge == "node" else "GPU")
    out.print(table)


@slurm_app.command("sync")
def slurm_sync(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reconcile Slurm's accounts, associations and GPU limits with jaif's projects and allocations."""
    compute = _compute(ctx)
    with context(ctx).session() as session:
        result = sync.sync(session=session, compute=compute, dry_run=dry_run)
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    for line in result.lines(dry_run=dry_run):
        out.print(line, markup=False, highlight=False)


@slurm_app.command("user")
def slurm_user(
    ctx: typer.Context,
    email: str,
    username: Annotated[str | None, typer.Argument(help="The Slurm (Unix) user name; leave out to remove it.")] = None,
) -> None:
    """Set the Slurm user name of a jaif user: their association in each of their projects' accounts."""
    with context(ctx).session() as session:
        name = sync.set_username(session=session, email=email, username=username)
    out.print(f"{email}: Slurm user {name}" if name else f"{email}: no Slurm user")


@accounting_app.command("import")
def accounting_import(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="Look back to this date (default: since the last import).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import finished jobs from the scheduler's accounting (sacct) and charge their GPU-hours; idempotent."""
    c = context(ctx)
    compute = make_compute(c.settings)
    result = accounting.import_accounting(session_factory=c.session, compute=compute, since=_when(since, "since"))
    if as_json:
        print(result.model_dump_json())
        return
    out.print(
        f"{result.imported} jobs imported ({result.already} already, {result.foreign} of accounts jaif does not "
        f"manage): {result.gpu_hours:.4f} GPU-hours, {result.energy_kwh:.4f} kWh"
        + (f"; {result.uncharged_gpu_hours:.4f} GPU-hours no allocation covered" if result.uncharged_gpu_hours else "")
    )


def report(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="A project's name.")] = None,
    org: Annotated[str | None, typer.Option(help="An organisation's name.")] = None,
    call: Annotated[str | None, typer.Option(help="An access call's id or title.")] = None,
    deployment: Annotated[str | None, typer.Option(help="A model deployment's name: its GPU-hours and energy "
                                                        "per 1,000 tokens served.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Until this date (UTC), exclusive.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per partition and a total.")] = False,
) -> None:
    """GPU-hours, energy (kWh), CO2 and tokens of a project, organisation, call or deployment over a period."""
    c = context(ctx)
    if deployment is not None:
        if project is not None or org is not None or call is not None:
            raise InvalidRequest("name one project, organisation, call or deployment to report on", param="deployment")
        with c.session() as session:
            served = deployment_reports.report(session=session, name=deployment, since=_when(since, "since"),
                                               until=_when(until, "until"))
        _print_report(served, deployment_reports, as_json=as_json, as_csv=as_csv)
        return
    with c.session() as session:
        result = reports.report(
            session=session, settings=c.settings, actor=CLI_ACTOR, project_name=project, org_name=org, call=call,
            since=_when(since, "since"), until=_when(until, "until"),
        )
    _print_report(result, reports, as_json=as_json, as_csv=as_csv)


def _print_report(result, module, *, as_json: bool, as_csv: bool) -> None:
    """A report as JSON, as CSV, or as lines, each written by its module's ``to_csv`` and ``lines``."""
    if as_json:
        print(result.model_dump_json())
    elif as_csv:
        sys.stdout.write(module.to_csv(result))
    else:
        for line in module.lines(result):
            out.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
    app.add_typer(slurm_app, name="slurm")
    app.add_typer(accounting_app, name="accounting")
    app.command()(report)
