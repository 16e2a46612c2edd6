"""Reading the portal's forms: ``FormStr`` (a text field of a posted form), ``FormFields`` (all of them),
and running the service call a form asks for inside a savepoint (``attempt``) so that a refused action
leaves nothing half done when the page then answers 400 with the error next to its field
(``field_error``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session

from jaif.errors import JaifError
from jaif.web.display import sentence

T = TypeVar("T")

FormStr = Annotated[str, Form()]


async def _form_fields(request: Request) -> dict[str, str]:
    """The text fields of a posted form (files are ignored), read before a synchronous page handler runs."""
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def attempt(session: Session, action: Callable[[], T]) -> T:
    """Run ``action`` in a savepoint: when it raises (a JaifError the page shows), its changes are undone."""
    savepoint = session.begin_nested()
    try:
        result = action()
    except JaifError:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result


def field_error(exc: JaifError, default: str) -> dict[str, str]:
    """The error of a refused form as {field: sentence}: the field the service named, else ``default``."""
    return {exc.param or default: sentence(exc.message)}
