"""org, user, project and key commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from jaif.access import membership, service
from jaif.access.schemas import CLI_ACTOR
from jaif.cli.common import context, out
from jaif.errors import InvalidRequest
from jaif.identity import service as identity
from jaif.identity.schemas import UserView

org_app = typer.Typer(help="Organisations.", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
project_app = typer.Typer(help="Projects.", no_args_is_help=True)
key_app = typer.Typer(help="Project API keys.", no_args_is_help=True)


@org_app.command("create")
def org_create(
    ctx: typer.Context,
    name: str,
    sector: Annotated[str, typer.Option(help="academia, startup, sme, industry or public")],
    country: Annotated[str, typer.Option(help="ISO 3166 two-letter code, e.g. DE")],
) -> None:
    """Create an organisation."""
    with context(ctx).session() as session:
        org = service.create_organisation(session=session, name=name, sector=sector, country=country)
        out.print(f"created organisation {org.name} ({org.sector}, {org.country})")


@org_app.command("list")
def org_list(ctx: typer.Context) -> None:
    """List organisations."""
    table = Table("name", "sector", "country", "projects")
    with context(ctx).session() as session:
        for org in service.list_organisations(session=session):
            table.add_row(org.name, org.sector, org.country, str(len(org.projects)))
    out.print(table)


@org_app.command("domain")
def org_domain(
    ctx: typer.Context,
    org: str,
    add: Annotated[list[str], typer.Option("--add", help="Register an e-mail domain, e.g. uni.example.")] = [],  # noqa: B006
    remove: Annotated[list[str], typer.Option("--remove", help="Remove a registered domain.")] = [],  # noqa: B006
) -> None:
    """The e-mail domains of an organisation (by name): a verified address in one confirms its holder's
    membership by itself. Without options, lists them."""
    with context(ctx).session() as session:
        found = service.get_organisation(session=session, name=org)
        domains = membership.domains(session=session, actor=CLI_ACTOR, organisation_id=found.id)
        for domain in add:
            domains = membership.add_domain(session=session, actor=CLI_ACTOR, organisation_id=found.id, domain=domain)
        for domain in remove:
            domains = membership.remove_domain(session=session, actor=CLI_ACTOR, organisation_id=found.id,
                                               domain=domain)
        out.print(f"{found.name}: " + (", ".join(domains) or "no domains"))


@org_app.command("members")
def org_members(
    ctx: typer.Context,
    org: str,
    confirm: Annotated[list[str], typer.Option("--confirm", help="Confirm this address's membership.")] = [],  # noqa: B006
) -> None:
    """Who named the organisation (by name) as theirs, pending or confirmed; --confirm EMAIL confirms."""
    with context(ctx).session() as session:
        found = service.get_organisation(session=session, name=org)
        for email in confirm:
            membership.confirm(session=session, actor=CLI_ACTOR, organisation_id=found.id, email=email)
        table = Table("e-mail", "name", "membership", "confirmed by")
        for m in membership.members(session=session, actor=CLI_ACTOR, organisation_id=found.id):
            table.add_row(m.email, m.name, m.state, m.confirmed_via or "")
    out.print(table)


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    email: str,
    role: Annotated[str, typer.Option(help="user, reviewer or operator")] = "user",
) -> None:
    """Create a user; prints a one-time password on the last line."""
    with context(ctx).session() as session:
        user, password = service.create_user(session=session, email=email, role=role)
        out.print(f"created {user.role} {user.email}; one-time password:")
    print(password)


@user_app.command("list")
def user_list(
    ctx: typer.Context,
    search: Annotated[str | None, typer.Option(help="A part of the e-mail address or name.")] = None,
    role: Annotated[str | None, typer.Option(help="Only this role: user, reviewer or operator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Accounts, by e-mail address, with role and state."""
    with context(ctx).session() as session:
        users = identity.list_users(session=session, actor=CLI_ACTOR, search=search, role=role)
        if as_json:
            print(json.dumps([UserView.model_validate(u).model_dump(mode="json") for u in users]))
            return
        table = Table("E-mail", "Name", "Role", "State", "Created")
        for u in users:
            table.add_row(u.email, u.name, u.role, "active" if u.is_active else "deactivated",
                          u.created_at.strftime("%Y-%m-%d"))
    out.print(table)


@user_app.command("set-role")
def user_set_role(
    ctx: typer.Context,
    email: str,
    role: Annotated[str, typer.Option(help="user, reviewer or operator")],
) -> None:
    """Change an account's platform role (reviewer: may be assigned reviews); its sessions end."""
    with context(ctx).session() as session:
        user = identity.change_user(session=session, actor=CLI_ACTOR, email=email, role=role)
        out.print(f"{user.email} is now {user.role}; their sessions have ended")


@user_app.command("deactivate")
def user_deactivate(ctx: typer.Context, email: str) -> None:
    """Deactivate an account: its sign-in and personal access tokens are refused, its sessions end (the
    API keys it made are its projects': revoke them on the keys page)."""
    with context(ctx).session() as session:
        user = identity.change_user(session=session, actor=CLI_ACTOR, email=email, active=False)
        out.print(f"{user.email} is deactivated; their sessions have ended")


@user_app.command("activate")
def user_activate(ctx: typer.Context, email: str) -> None:
    """Activate a deactivated account again."""
    with context(ctx).session() as session:
        user = identity.change_user(session=session, actor=CLI_ACTOR, email=email, active=True)
        out.print(f"{user.email} is active")


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: str,
    org: Annotated[str, typer.Option(help="The organisation's name.")],
    token_quota: Annotated[int | None, typer.Option(help="Inference token allowance; unlimited if left out.")] = None,
    allow_model: Annotated[list[str] | None, typer.Option(help="Restrict to these models (repeatable).")] = None,
    member: Annotated[list[str] | None, typer.Option(help="E-mail of a member to add (repeatable).")] = None,
) -> None:
    """Create a project of an organisation."""
    with context(ctx).session() as session:
        project = service.create_project(
            session=session, name=name, organisation=org, token_quota=token_quota, allowed_models=allow_model or None
        )
        for email in member or ():
            service.add_member(session=session, project_name=name, email=email)
        quota = "unlimited tokens" if project.token_quota is None else f"{project.token_quota} tokens"
        out.print(f"created project {project.name} ({quota})")


@project_app.command("list")
def project_list(ctx: typer.Context) -> None:
    """List projects with their token books."""
    table = Table("name", "organisation", "token quota", "spent", "leased")
    with context(ctx).session() as session:
        for p in service.list_projects(session=session):
            quota = "unlimited" if p.token_quota is None else str(p.token_quota)
            table.add_row(p.name, p.organisation.name, quota, str(p.tokens_spent), str(p.tokens_leased))
    out.print(table)


@project_app.command("set-quota")
def project_set_quota(
    ctx: typer.Context,
    name: str,
    tokens: Annotated[int | None, typer.Argument(help="New allowance; leave out for unlimited.")] = None,
) -> None:
    """Change a project's token allowance."""
    with context(ctx).session() as session:
        project = service.set_token_quota(session=session, project_name=name, token_quota=tokens)
        out.print(
            f"{project.name}: token quota {project.token_quota if project.token_quota is not None else 'unlimited'}"
        )


def _expiry(days: float | None, at: str | None) -> datetime | None:
    if days is not None and at is not None:
        raise InvalidRequest("give --expires-in-days or --expires-at, not both")
    if days is not None:
        return datetime.now(UTC) + timedelta(days=days)
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError as exc:
            raise InvalidRequest(f"--expires-at {at!r} is not an ISO 8601 date or time") from exc
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project's name.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    user: Annotated[str | None, typer.Option(help="E-mail of the user the key belongs to.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="Expire at this ISO 8601 time (UTC if no zone).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute allowed.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute allowed.")] = None,
) -> None:
    """Create an API key; prints the key, shown only this once, alone on the last line."""
    with context(ctx).session() as session:
        key, secret = service.create_api_key(
            session=session,
            project_name=project,
            user_email=user,
            name=name,
            expires_at=_expiry(expires_in_days, expires_at),
            rpm_limit=rpm,
            tpm_limit=tpm,
        )
        out.print(f"created key {key.prefix}… for project {project}; it is shown only now:")
    print(secret)


@key_app.command("list")
def key_list(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List a project's keys (prefixes only: the keys themselves are not stored)."""
    with context(ctx).session() as session:
        keys = service.list_api_keys(session=session, project_name=project)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "prefix": k.prefix,
                        "name": k.name,
                        "created_at": _iso(k.created_at),
                        "expires_at": _iso(k.expires_at),
                        "revoked_at": _iso(k.revoked_at),
                        "last_used_at": _iso(k.last_used_at),
                        "rpm_limit": k.rpm_limit,
                        "tpm_limit": k.tpm_limit,
                    }
                    for k in keys
                ]
            )
        )
        return
    table = Table("prefix", "name", "created", "expires", "revoked", "last used", "rpm", "tpm")
    for k in keys:
        table.add_row(
            k.prefix,
            k.name,
            _when(k.created_at),
            _when(k.expires_at),
            _when(k.revoked_at),
            _when(k.last_used_at),
            str(k.rpm_limit or "-"),
            str(k.tpm_limit or "-"),
        )
    out.print(table)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@key_app.command("revoke")
def key_revoke(ctx: typer.Context, prefix: str) -> None:
    """Revoke a key by its prefix (as `key list` shows it)."""
    with context(ctx).session() as session:
        key = service.revoke_api_key(session=session, prefix=prefix)
        out.print(f"revoked key {key.prefix}")


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(user_app, name="user")
    app.add_typer(project_app, name="project")
    app.add_typer(key_app, name="key")
