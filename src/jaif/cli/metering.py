"""usage command."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from jaif.access import service as access
from jaif.cli.common import context, out
from jaif.metering import service


def usage(
    ctx: typer.Context,
    project: Annotated[str, typer.Option(help="The project's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Token usage of a project: totals and per model."""
    with context(ctx).session() as session:
        report = service.project_usage(session=session, project=access.get_project(session=session, name=project))
    if as_json:
        print(report.model_dump_json())
        return
    quota = "unlimited" if report.token_quota is None else str(report.token_quota)
    out.print(
        f"project {report.project}: {report.requests} requests, {report.prompt_tokens} prompt + "
        f"{report.completion_tokens} completion tokens; quota {quota}, spent {report.tokens_spent}, "
        f"leased {report.tokens_leased}"
    )
    table = Table("model", "requests", "prompt tokens", "completion tokens", "total")
    for m in report.models:
        table.add_row(m.model, str(m.requests), str(m.prompt_tokens), str(m.completion_tokens), str(m.total_tokens))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(usage)
