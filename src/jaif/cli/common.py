"""What every command group shares: the root app, the consoles, settings and sessions."""

from __future__ import annotations

from contextlib import AbstractContextManager

import typer
from rich.console import Console
from sqlalchemy.orm import Session

import jaif.db.models  # noqa: F401  (every mapper known before the first query: relationships span concepts)
from jaif.config import Settings
from jaif.db.engine import make_engine, make_session_factory, transaction

app = typer.Typer(help="jaif: AI Factory platform.", no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Context:
    """Settings and a lazily built session factory, shared by the commands of one invocation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factory = None

    def session(self) -> AbstractContextManager[Session]:
        if self._factory is None:
            self._factory = make_session_factory(make_engine(self.settings.database_url))
        return transaction(self._factory)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = Context(Settings())


def context(ctx: typer.Context) -> Context:
    return ctx.obj
