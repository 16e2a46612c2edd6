"""token commands: personal access tokens of users, for scripts using /api/v1; account commands: a user's
role, disabling and enabling an account (each ends the user's portal sessions at once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Column, Table

from jaif.access import service as access
from jaif.cli.common import context, out
from jaif.errors import InvalidRequest
from jaif.identity import pats
from jaif.identity import service as identity

token_app = typer.Typer(help="Personal access tokens (jaifpat-…) for the REST API at /api/v1.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="E-mail of the user the token acts as.")],
    name: Annotated[str, typer.Option(help="A label for the token.")] = "",
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Create a token; prints the token, shown only this once, alone on the last line."""
    if expires_in_days is not None and expires_in_days <= 0:
        raise InvalidRequest("--expires-in-days must be more than 0")
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with context(ctx).session() as session:
        owner = access.get_user(session=session, email=user)
        row, secret = pats.create(session=session, user_id=owner.id, name=name, expires_at=expires_at)
        out.print(f"created token {row.prefix}… for {owner.email}; it is shown only now:")
    print(secret)


@token_app.command("list")
def token_list(ctx: typer.Context, user: Annotated[str, typer.Option(help="E-mail of the user.")]) -> None:
    """List a user's tokens (prefixes only: the tokens themselves are not stored)."""
    table = Table(Column("prefix", no_wrap=True), "name", "created", "expires", "revoked", "last used")
    with context(ctx).session() as session:
        owner = access.get_user(session=session, email=user)
        for t in pats.list_for(session=session, user_id=owner.id):
            table.add_row(t.prefix, t.name, _when(t.created_at), _when(t.expires_at), _when(t.revoked_at),
                          _when(t.last_used_at))
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    prefix: str,
    user: Annotated[str, typer.Option(help="E-mail of the token's user.")],
) -> None:
    """Revoke a user's token by its prefix (as `token list` shows it)."""
    with context(ctx).session() as session:
        owner = access.get_user(session=session, email=user)
        row = pats.revoke(session=session, user_id=owner.id, token_id=prefix)
        out.print(f"revoked token {row.prefix}")


account_app = typer.Typer(help="Accounts: role, disable, enable (sessions end at once).", no_args_is_help=True)


@account_app.command("set-role")
def account_set_role(
    ctx: typer.Context, email: str, role: Annotated[str, typer.Argument(help="user, reviewer or operator")]
) -> None:
    """Change a user's platform role; the user's portal sessions end."""
    with context(ctx).session() as session:
        user = identity.set_role(session=session, email=email, role=role)
        out.print(f"{user.email} is now {user.role}; their sessions have ended")


@account_app.command("disable")
def account_disable(ctx: typer.Context, email: str) -> None:
    """Disable an account: its sessions end at once, its tokens and sign-in are refused."""
    with context(ctx).session() as session:
        user = identity.set_active(session=session, email=email, active=False)
        out.print(f"{user.email} is disabled; their sessions have ended")


@account_app.command("enable")
def account_enable(ctx: typer.Context, email: str) -> None:
    """Enable a disabled account again."""
    with context(ctx).session() as session:
        user = identity.set_active(session=session, email=email, active=True)
        out.print(f"{user.email} is enabled")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(account_app, name="account")
