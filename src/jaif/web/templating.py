"""The one Jinja2 environment of the portal, with the helpers every template may call:

- ``{{ csrf_input() }}`` the hidden CSRF field every POST form needs; ``{{ csrf_token() }}`` the token
- ``flashed_messages()`` the flash messages to show once (base.html shows them)
- ``signed_in_user()`` {"email", "name", "role"} of the signed-in user, or None (base.html's navigation)
- ``forms.html`` macros: ``{% import "forms.html" as forms %}{{ forms.field("email", "E-mail", ...) }}``
  render a labelled input with its error next to it and the typed value kept.

Views render with ``TEMPLATES.TemplateResponse(request, "concept/page.html", {...})``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from jaif.web.csrf import FIELD, csrf_token
from jaif.web.session import pop_flashes, signed_in_user


@pass_context
def _csrf_token(context) -> str:
    return csrf_token(context["request"])


@pass_context
def _csrf_input(context) -> Markup:
    token = csrf_token(context["request"])
    return Markup(f'<input type="hidden" name="{FIELD}" value="{escape(token)}">')


@pass_context
def _flashed_messages(context) -> list[tuple[str, str]]:
    return pop_flashes(context["request"])


@pass_context
def _signed_in_user(context) -> dict | None:
    return signed_in_user(context["request"])


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    templates.env.globals.update(
        csrf_input=_csrf_input,
        csrf_token=_csrf_token,
        flashed_messages=_flashed_messages,
        signed_in_user=_signed_in_user,
    )
    return templates


TEMPLATES = make_templates()
