"""support, solution and training commands: the factory's services for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from jaif.access.schemas import CLI_ACTOR
from jaif.catalogue import service as catalogue
from jaif.cli.common import JsonFlag, context, out, show_list
from jaif.config import Settings
from jaif.errors import InvalidRequest
from jaif.notify.mail import Mailer
from jaif.served import served_url
from jaif.support import service as support
from jaif.training import service as training

support_app = typer.Typer(help="The support desk.", no_args_is_help=True)
solution_app = typer.Typer(help="The catalogue of domain solutions.", no_args_is_help=True)
training_app = typer.Typer(help="Training events.", no_args_is_help=True)

def _mailer(settings: Settings) -> Mailer:
    return Mailer(smtp=settings.smtp, outbox=settings.outbox_dir, base_url=served_url(settings))


def _when(text: str, param: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--{param} must be a date and time such as 2025-03-04T09:00 (UTC)", param=param) from None


@support_app.command("list")
def support_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="open, in_progress, waiting_for_user, resolved, closed")] = None,
    category: Annotated[str | None, typer.Option(help="onboarding, porting, scaling, fine_tuning, ...")] = None,
    unassigned: Annotated[bool, typer.Option(help="Only requests nobody is assigned to.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List support requests, newest activity first."""
    with context(ctx).session() as session:
        found = support.list_requests(
            session=session,
            actor=CLI_ACTOR,
            status=status,
            category=category,
            assignee_id="none" if unassigned else None,
        )
    show_list(
        found,
        as_json=as_json,
        columns=("id", "status", "category", "subject", "requester", "project", "assignee", "updated"),
        row=lambda r: (
            r.id[:8],
            r.status,
            r.category,
            r.subject,
            r.requester.email,
            r.project_name or "",
            r.assignee.email if r.assignee else "",
            f"{r.updated_at:%Y-%m-%d %H:%M}",
        ),
    )


@solution_app.command("list")
def solution_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Also unpublished solutions.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the catalogue with each solution's licence and gateway model."""
    with context(ctx).session() as session:
        found = catalogue.list_solutions(session=session, actor=CLI_ACTOR, include_unpublished=all_)
    show_list(
        found,
        as_json=as_json,
        columns=("slug", "name", "domain", "licence", "languages", "model", "served", "published"),
        row=lambda s: (
            s.slug,
            s.name,
            s.domain,
            s.licence,
            ", ".join(s.languages),
            s.model.name if s.model else "",
            ("yes" if s.model.served else "no") if s.model else "",
            "yes" if s.is_published else "no",
        ),
    )


@solution_app.command("create")
def solution_create(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="URL name: lower-case words joined by '-', e.g. med-qa.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    model: Annotated[str | None, typer.Option(help="Gateway model name or alias to link.")] = None,
    summary: str = "",
    domain: Annotated[str, typer.Option(help="health, climate, materials, public sector, ...")] = "",
    licence: Annotated[str, typer.Option(help="SPDX identifier, e.g. Apache-2.0.")] = "",
    intended_use: str = "",
    limitations: str = "",
    language: Annotated[list[str] | None, typer.Option(help="A language it handles (repeatable).")] = None,
    training_data: str = "",
    publish: Annotated[bool, typer.Option(help="Publish at once (default: a draft only operators see).")] = False,
) -> None:
    """Add a solution with its model card."""
    with context(ctx).session() as session:
        created = catalogue.create_solution(
            session=session,
            actor=CLI_ACTOR,
            slug=slug,
            name=name,
            model=model,
            summary=summary,
            domain=domain,
            licence=licence,
            intended_use=intended_use,
            limitations=limitations,
            languages=language or [],
            training_data=training_data,
            is_published=publish,
        )
    state = "published" if created.is_published else "draft"
    out.print(f"created solution {created.slug} ({state})")


@solution_app.command("publish")
def solution_publish(
    ctx: typer.Context,
    slug: str,
    unpublish: Annotated[bool, typer.Option(help="Withdraw it instead.")] = False,
) -> None:
    """Publish a solution (or withdraw it with --unpublish)."""
    with context(ctx).session() as session:
        done = catalogue.publish(session=session, actor=CLI_ACTOR, slug=slug, published=not unpublish)
    out.print(f"{done.slug} is {'published' if done.is_published else 'unpublished'}")


@solution_app.command("link")
def solution_link(
    ctx: typer.Context,
    slug: str,
    model: Annotated[str | None, typer.Argument(help="Gateway model or alias; leave out to unlink.")] = None,
) -> None:
    """Link a solution to the gateway model that serves it."""
    with context(ctx).session() as session:
        done = catalogue.update_solution(session=session, actor=CLI_ACTOR, slug=slug, changes={"model": model})
    out.print(f"{done.slug} -> {done.model.name if done.model else 'no model'}")


@training_app.command("list")
def training_list(
    ctx: typer.Context,
    past: Annotated[bool, typer.Option(help="Also events that have ended.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List training events with their seats."""
    with context(ctx).session() as session:
        found = training.list_events(session=session, actor=CLI_ACTOR, include_past=past)
    show_list(
        found,
        as_json=as_json,
        columns=("id", "title", "starts (UTC)", "location", "seats", "registered", "waitlisted", "open"),
        row=lambda e: (
            e.id,
            e.title,
            f"{e.starts_at:%Y-%m-%d %H:%M}",
            e.location,
            str(e.seats),
            str(e.registered),
            str(e.waitlisted),
            "yes" if e.registration_open else "no",
        ),
    )


@training_app.command("create")
def training_create(
    ctx: typer.Context,
    title: str,
    starts: Annotated[str, typer.Option(help="Start, ISO 8601; UTC unless it names a zone.")],
    ends: Annotated[str, typer.Option(help="End, ISO 8601.")],
    seats: Annotated[int, typer.Option(help="Places; registrations beyond them are waitlisted.")],
    location: str = "online",
    description: str = "",
    closes: Annotated[str | None, typer.Option(help="Registration deadline (default: the start).")] = None,
    draft: Annotated[bool, typer.Option(help="Keep it unpublished.")] = False,
) -> None:
    """Plan a training event; prints its id on the last line."""
    with context(ctx).session() as session:
        event = training.create_event(
            session=session,
            actor=CLI_ACTOR,
            title=title,
            starts_at=_when(starts, "starts"),
            ends_at=_when(ends, "ends"),
            seats=seats,
            location=location,
            description=description,
            registration_closes_at=_when(closes, "closes") if closes else None,
            is_published=not draft,
        )
        out.print(f"created training event {event.title} with {event.seats} seats")
    print(event.id)


@training_app.command("registrations")
def training_registrations(ctx: typer.Context, event_id: str, as_json: JsonFlag = False) -> None:
    """Who is registered and who waits, in order."""
    with context(ctx).session() as session:
        found = training.list_registrations(session=session, actor=CLI_ACTOR, event_id=event_id)
    show_list(
        found,
        as_json=as_json,
        columns=("email", "name", "status", "waitlist", "since"),
        row=lambda r: (
            r.user.email,
            r.user.name,
            r.status,
            str(r.waitlist_position) if r.waitlist_position else "",
            f"{r.created_at:%Y-%m-%d %H:%M}",
        ),
    )


@training_app.command("cancel")
def training_cancel(ctx: typer.Context, event_id: str, registration_id: str) -> None:
    """Cancel someone's registration; the first on the waitlist gets the seat and is told by e-mail."""
    c = context(ctx)
    with c.session() as session:
        done = training.cancel(
            session=session,
            mailer=_mailer(c.settings),
            actor=CLI_ACTOR,
            event_id=event_id,
            registration_id=registration_id,
        )
    out.print(f"cancelled the registration of {done.user.email}")


def register(app: typer.Typer) -> None:
    app.add_typer(support_app, name="support")
    app.add_typer(solution_app, name="solution")
    app.add_typer(training_app, name="training")
