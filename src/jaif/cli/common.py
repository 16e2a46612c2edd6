"""What every command group shares: the root app, the consoles, settings and sessions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy.orm import Session, sessionmaker

import jaif.db.models  # noqa: F401  (every mapper known before the first query: relationships span concepts)
from jaif.config import Settings
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.inference.revocation import announce_on_commit

app = typer.Typer(help="jaif: AI Factory platform.", no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def print_json_list(items: Iterable[Any]) -> None:
    """A list of pydantic models as one JSON array, for scripts (``--json``)."""
    print(json.dumps([i.model_dump(mode="json") for i in items], ensure_ascii=False))


def show_list(
    items: Sequence[Any],
    *,
    as_json: bool,
    columns: Sequence[str | Column],
    row: Callable[[Any], Sequence[str]],
    console: Console | None = None,
) -> None:
    """A list as JSON (``--json``) or as a table with one row per item."""
    if as_json:
        print_json_list(items)
        return
    table = Table(*columns)
    for item in items:
        table.add_row(*row(item))
    (console or out).print(table)
err = Console(stderr=True, soft_wrap=True)


class Context:
    """Settings and a lazily built session factory, shared by the commands of one invocation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factory: sessionmaker[Session] | None = None

    def session(self) -> AbstractContextManager[Session]:
        if self._factory is None:
            self._factory = make_session_factory(make_engine(self.settings.database_url))
            # Keys revoked here reach the running gateways through Redis, where it is configured.
            announce_on_commit(self._factory, redis_url=self.settings.redis_url)
        return transaction(self._factory)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = Context(Settings())


def context(ctx: typer.Context) -> Context:
    return ctx.obj
