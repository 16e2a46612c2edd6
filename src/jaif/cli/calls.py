"""call and application commands: the access calls and the applications made to them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from jaif.access.schemas import CLI_ACTOR
from jaif.applications import service as applications
from jaif.applications import visibility
from jaif.calls import service
from jaif.calls.schemas import CallIn, CallPatch
from jaif.cli.common import JsonFlag, context, out, print_json_list
from jaif.compute.backend import make_compute
from jaif.errors import InvalidRequest

call_app = typer.Typer(help="Access calls.", no_args_is_help=True)
application_app = typer.Typer(help="Applications to the calls.", no_args_is_help=True)

def _wide() -> Console:
    """Where tables go: the terminal as it is, or, piped, lines wide enough that nothing is cut."""
    return out if out.is_terminal else Console(soft_wrap=True, width=200)


def _id_column() -> Column:
    return Column("id", no_wrap=True, min_width=32)  # whole, to copy into other commands


@call_app.command("list")
def call_list(
    ctx: typer.Context,
    all_calls: Annotated[bool, typer.Option("--all", help="Inactive calls too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the access calls."""
    with context(ctx).session() as session:
        found = service.list_calls(session=session, actor=CLI_ACTOR, include_inactive=all_calls)
        calls = [service.out(c) for c in found]
    if as_json:
        print_json_list(calls)
        return
    table = Table(Column("slug", no_wrap=True), "name", Column("kind", no_wrap=True), Column("review", no_wrap=True),
                  "GPU-h per application", "months", "target (working days)", "open")
    for c in calls:
        low = f"{c.min_gpu_hours:g}" if c.min_gpu_hours is not None else "0"
        high = f"{c.max_gpu_hours:g}" if c.max_gpu_hours is not None else "∞"
        table.add_row(c.slug, c.name, c.kind, c.review_mode, f"{low}-{high}",
                      ", ".join(map(str, c.durations_months)) or "-", str(c.target_days_to_access),
                      "yes" if c.is_open else "no")
    _wide().print(table)


def _partitions(values: list[str] | None) -> dict[str, float]:
    offered = {}
    for value in values or []:
        name, sep, hours = value.partition("=")
        try:
            offered[name.strip()] = float(hours)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InvalidRequest(f"--partition takes NAME=GPU_HOURS, e.g. booster=100000, not {value!r}")
    return offered


def _when(value: str | None, param: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"--{param} must be an ISO 8601 date or time such as 2026-03-01", param=param) from None


def _validated(schema: type[CallIn], values: dict) -> CallIn:
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise InvalidRequest(f"--{field.replace('_', '-')}: {first['msg']}", param=field) from None


@call_app.command("create")
def call_create(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str, typer.Option(help="The call's title.")],
    kind: Annotated[str, typer.Option(help="playground, fast_lane, large_scale, inference_only or custom")] = "custom",
    review_mode: Annotated[str, typer.Option(help="automatic, technical or peer")] = "technical",
    partition: Annotated[list[str] | None, typer.Option(help="GPU-hours offered: NAME=HOURS (repeatable).")] = None,
    offered_tokens: Annotated[int, typer.Option(help="Inference tokens offered in all.")] = 0,
    max_gpu_hours: Annotated[float | None, typer.Option(help="Most GPU-hours per application.")] = None,
    min_gpu_hours: Annotated[float | None, typer.Option(help="Fewest GPU-hours per application.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per application.")] = None,
    duration: Annotated[list[int] | None, typer.Option(help="A duration in months to offer (repeatable).")] = None,
    sector: Annotated[list[str] | None, typer.Option(help="An eligible sector (repeatable); all if left out.")] = None,
    country: Annotated[list[str] | None, typer.Option(
        help="An eligible country code (repeatable); EU and Horizon Europe associated countries if left out.")] = None,
    target_days: Annotated[int, typer.Option(help="Target time to access in working days.")] = 10,
    opens_at: Annotated[str | None, typer.Option(help="ISO date or time; now if left out.")] = None,
    closes_at: Annotated[str | None, typer.Option(help="ISO date or time; open-ended if left out.")] = None,
    cutoff: Annotated[list[str] | None, typer.Option(help="A peer-review cut-off date (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="What the call is for.")] = "",
) -> None:
    """Create an access call."""
    try:
        cutoffs = [date.fromisoformat(c) for c in cutoff or []]
    except ValueError:
        raise InvalidRequest("--cutoff takes dates such as 2026-03-01", param="cutoff") from None
    data = _validated(
        CallIn,
        dict(
            slug=slug, name=name, kind=kind, review_mode=review_mode, offered_gpu_hours=_partitions(partition),
            offered_tokens=offered_tokens, max_gpu_hours=max_gpu_hours, min_gpu_hours=min_gpu_hours,
            max_tokens=max_tokens, durations_months=duration or [], eligible_sectors=sector or [],
            eligible_countries=country or None, target_days_to_access=target_days,
            opens_at=_when(opens_at, "opens-at"), closes_at=_when(closes_at, "closes-at"), cutoffs=cutoffs,
            description=description,
        ),
    )
    c = context(ctx)
    partitions = list(make_compute(c.settings).partitions())
    with c.session() as session:
        call = service.create_call(session=session, actor=CLI_ACTOR, data=data, partitions=partitions)
        out.print(f"created call {call.slug} ({call.kind}, {call.review_mode} review)")


@call_app.command("close")
def call_close(ctx: typer.Context, ref: str) -> None:
    """Close a call (by slug or id): it takes no more submissions and leaves the lists."""
    with context(ctx).session() as session:
        call = service.update_call(session=session, actor=CLI_ACTOR, ref=ref, data=CallPatch(is_active=False))
        out.print(f"closed call {call.slug}")


@application_app.command("list")
def application_list(
    ctx: typer.Context,
    call: Annotated[str | None, typer.Option(help="A call's slug or id.")] = None,
    state: Annotated[str | None, typer.Option(help="draft, submitted, technical_review, peer_review, accepted, "
                                                   "rejected, allocated or withdrawn")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List applications, most recently changed first."""
    with context(ctx).session() as session:
        found = [visibility.summary(a) for a in
                 applications.list_applications(session=session, actor=CLI_ACTOR, call=call, state=state)]
    if as_json:
        print_json_list(found)
        return
    table = Table(_id_column(), "call", "state", "title", "applicant", "organisation", "submitted", "allocated")
    for a in found:
        table.add_row(a.id, a.call_slug, a.state, a.title, a.applicant_email, a.organisation_name or "-",
                      _day(a.submitted_at), _day(a.allocated_at))
    _wide().print(table)


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def register(app: typer.Typer) -> None:
    app.add_typer(call_app, name="call")
    app.add_typer(application_app, name="application")
