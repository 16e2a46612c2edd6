"""The operator console's accounts (/operator/users): search by address or name, filter by role, change
a role (for example, make someone a reviewer), deactivate or reactivate an account. Each change ends the
account's sessions; an operator cannot demote or deactivate themselves (identity/service.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from jaif.access.service import ROLES
from jaif.errors import JaifError
from jaif.identity import service as identity
from jaif.identity.deps import PageOperator
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)
ROLE_LABELS = {"user": "User", "reviewer": "Reviewer", "operator": "Operator"}


@router.get("/operator/users")
def users_page(
    request: Request, session: DB, actor: PageOperator,
    search: Annotated[str, Query(max_length=320)] = "", role: str = "", page: str = "1",
) -> Response:
    chosen_role = role if role in ROLES else None
    found = search.strip() or None
    pager = Pager.of(request, page=page,
                     total=identity.count_users(session=session, actor=actor, search=found, role=chosen_role))
    users = identity.list_users(session=session, actor=actor, search=found, role=chosen_role, limit=pager.size,
                                offset=pager.offset)
    return render(
        request, "identity/users.html", section="operator", users=users, pager=pager,
        chosen={"search": search, "role": chosen_role or ""}, roles=list(ROLE_LABELS.items()), me=actor.user_id,
    )


def _back(request: Request, form: dict[str, str]) -> RedirectResponse:
    """Back to the list as it was filtered (the form carries the list's query string)."""
    query = form.get("back", "")  # appended after "?": it can only filter this page, never lead elsewhere
    return RedirectResponse("/operator/users" + (f"?{query}" if query else ""), status_code=303)


def _change(request: Request, session: DB, actor: PageOperator, user_id: str, form: dict[str, str], *,
            role: str | None = None, active: bool | None = None) -> Response:
    try:
        user = attempt(session, lambda: identity.change_user(
            session=session, actor=actor, email=identity.get_user(session=session, user_id=user_id).email,
            role=role, active=active))
    except JaifError as exc:
        if exc.status == 404:
            raise
        flash(request, sentence(exc.message), "error")
    else:
        state = "active" if user.is_active else "deactivated"
        flash(request, f"{user.email} is now {ROLE_LABELS[user.role].lower()}, {state}; their sessions have ended.")
    return _back(request, form)


@router.post("/operator/users/{user_id}/role")
def change_role(request: Request, session: DB, actor: PageOperator, user_id: str, form: FormFields) -> Response:
    role = form.get("role", "")
    if role not in ROLES:
        flash(request, "Choose a role: user, reviewer or operator.", "error")
        return _back(request, form)
    return _change(request, session, actor, user_id, form, role=role)


@router.post("/operator/users/{user_id}/active")
def change_active(request: Request, session: DB, actor: PageOperator, user_id: str, form: FormFields) -> Response:
    return _change(request, session, actor, user_id, form, active=form.get("active") == "1")
