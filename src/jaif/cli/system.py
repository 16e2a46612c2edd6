"""serve, db upgrade, init."""

from __future__ import annotations

from typing import Annotated

import typer

from jaif.cli.common import context, out
from jaif.config import Settings
from jaif.errors import JaifError

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default JAIF_WEB__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default JAIF_WEB__PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default JAIF_WEB__WORKERS).")] = None,
) -> None:
    """Serve the API and the portal."""
    from jaif import server

    server.run(context(ctx).settings, host=host, port=port, workers=workers)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply database migrations up to the latest."""
    from jaif.db.migrate import upgrade

    upgrade(context(ctx).settings.database_url)
    out.print("database is up to date")


def init(ctx: typer.Context) -> None:
    """Migrate, register the built-in models, and on first start create the operator and a demo project."""
    from jaif.bootstrap import initialise
    from jaif.db.migrate import upgrade
    from jaif.secret_key import secret_key

    c = context(ctx)
    if c.settings.web.secret_key is None:  # a random session secret in data_dir/secret_key (0600), once
        secret_key(c.settings)
        out.print(f"session secret: {c.settings.secret_key_file} (keep it private; mode 0600)")
    upgrade(c.settings.database_url)
    if c.settings.scheduler == "local":
        from jaif.compute.backend import make_isolation

        out.print(make_isolation(c.settings).describe())  # and var/, the jobs directory, the database: the server's
    partition = _partition_for_calls(c.settings)
    with c.session() as session:
        first = initialise(session=session, builtin_models=c.settings.inference.builtin_models, partition=partition)
    if first is None:
        out.print("already initialised; the first credentials were shown on the first start")
        return
    out.print("[bold]First start: these credentials are shown once. Keep them.[/bold]")
    out.print(f"  operator e-mail:    {first.operator_email}")
    out.print(f"  operator password:  {first.operator_password}")
    out.print(f"  project:            {first.project}")
    out.print(f"  API key:            {first.api_key}")


def _partition_for_calls(settings: Settings) -> str:
    """The site's partition for the seeded calls' GPU-hours: `local` with the local executor, a partition
    from sinfo under Slurm (compute/site.py ``preferred_partition``)."""
    from jaif.calls.seed import PARTITION
    from jaif.compute.backend import make_compute
    from jaif.compute.site import preferred_partition

    try:
        found = preferred_partition(make_compute(settings).partitions())
    except JaifError as exc:
        out.print(f"[yellow]the scheduler did not list its partitions ({exc.message}); the first calls "
                  f"offer GPU-hours on {PARTITION!r}: change them with `jaif call` or the portal[/yellow]")
        return PARTITION
    return found or PARTITION


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(init)
    app.add_typer(db_app, name="db")
