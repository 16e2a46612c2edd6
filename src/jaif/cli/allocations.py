"""allocation commands: GPU-hours and inference tokens of projects."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service
from jaif.cli.common import context, out
from jaif.compute.backend import make_compute
from jaif.config import Settings
from jaif.errors import InvalidRequest
from jaif.notify.mail import Mailer
from jaif.served import served_url

allocation_app = typer.Typer(help="Allocations of GPU-hours and inference tokens.", no_args_is_help=True)


def _mailer(settings: Settings) -> Mailer:
    return Mailer(smtp=settings.smtp, outbox=settings.outbox_dir, base_url=served_url(settings))


def _wide() -> Console:
    """Where tables go: the terminal as it is, or, piped, lines wide enough that nothing is cut."""
    return out if out.is_terminal else Console(soft_wrap=True, width=200)


def _id_column() -> Column:
    return Column("id", no_wrap=True, min_width=32)  # whole, to copy into other commands


@allocation_app.command("create")
def allocation_create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project's name.")],
    days: Annotated[float, typer.Option(help="How many days it lasts.")],
    partition: Annotated[str | None, typer.Option(help="The GPU partition (with --gpu-hours).")] = None,
    gpu_hours: Annotated[float | None, typer.Option(help="GPU-hours on --partition.")] = None,
    tokens: Annotated[int | None, typer.Option(help="Inference tokens (the project's token quota grows).")] = None,
    starts_at: Annotated[str | None, typer.Option(help="ISO 8601 start (UTC if no zone); now if left out.")] = None,
) -> None:
    """Allocate GPU-hours on a partition, or inference tokens; prints the allocation id on the last line."""
    if (gpu_hours is None) == (tokens is None):
        raise InvalidRequest("give --gpu-hours (with --partition) or --tokens, one of them")
    if gpu_hours is not None and not partition:
        raise InvalidRequest("--gpu-hours needs --partition", param="partition")
    if tokens is not None and partition:
        raise InvalidRequest("--partition goes with --gpu-hours, not --tokens", param="partition")
    start = None
    if starts_at is not None:
        try:
            start = datetime.fromisoformat(starts_at)
        except ValueError:
            raise InvalidRequest(f"--starts-at {starts_at!r} is not an ISO 8601 date or time") from None
    # Exactly one of the two is given (checked above).
    resource, amount = ("gpu_hours", gpu_hours) if gpu_hours is not None else ("tokens", tokens or 0)
    c = context(ctx)
    with c.session() as session:
        allocation = service.create_allocation(
            session=session, actor=CLI_ACTOR, mailer=_mailer(c.settings), project_name=project,
            resource=resource, amount=amount, partition=partition, starts_at=start, days=days,
            partitions=list(make_compute(c.settings).partitions()),
        )
        out.print(f"allocated to {project}: {service.describe(allocation)}; allocation id:")
        allocation_id = allocation.id
    print(allocation_id)


@allocation_app.command("list")
def allocation_list(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="The project's name; every project if left out.")] = None,
    status: Annotated[str | None, typer.Option(help="active, expired, exhausted or revoked")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List allocations with what was used of them, newest first."""
    with context(ctx).session() as session:
        found = [service.out(a) for a in
                 service.list_allocations(session=session, actor=CLI_ACTOR, project_name=project, status=status)]
    if as_json:
        print(json.dumps([a.model_dump(mode="json") for a in found], ensure_ascii=False))
        return
    table = Table(_id_column(), "project", "resource", "amount", "used", "from", "to", "status")
    for a in found:
        what = f"GPU-h {a.partition}" if a.resource == "gpu_hours" else "tokens"
        table.add_row(a.id, a.project_name, what, f"{a.amount:,.0f}" if a.amount >= 100 else f"{a.amount:g}",
                      f"{a.used:,.0f}" if a.used >= 100 else f"{a.used:g}", f"{a.starts_at:%Y-%m-%d}",
                      f"{a.ends_at:%Y-%m-%d}", a.status)
    _wide().print(table)


@allocation_app.command("revoke")
def allocation_revoke(ctx: typer.Context, allocation_id: str) -> None:
    """Revoke an active allocation (tokens: the project's token quota shrinks at once)."""
    with context(ctx).session() as session:
        allocation = service.revoke_allocation(session=session, actor=CLI_ACTOR, allocation_id=allocation_id)
        out.print(f"revoked allocation {allocation.id} of {allocation.project.name}")


@allocation_app.command("sweep")
def allocation_sweep(ctx: typer.Context) -> None:
    """Expire ended allocations and mark used-up ones exhausted now (a running server does it every minute)."""
    with context(ctx).session() as session:
        result = service.sweep(session=session)
        out.print(f"{result.expired} expired, {result.exhausted} exhausted, {result.projects_synced} projects synced")


def register(app: typer.Typer) -> None:
    app.add_typer(allocation_app, name="allocation")
