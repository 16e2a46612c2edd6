"""A project's API keys for the inference API (/v1), the portal's one page for them (the team page links
here): its principal investigators (and operators) create them, each shown once, and revoke them; members
see who to ask. A form with a mistake comes back with the error next to its field and what was typed
kept. To anyone outside the project it does not exist (404). Who may do what is identity/team.py's
to decide.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.errors import JaifError
from jaif.identity import team
from jaif.identity.deps import PageUser
from jaif.identity.forms import expiry_in_days
from jaif.web.deps import DB, public_base_url
from jaif.web.display import render, sentence
from jaif.web.forms import FormStr, attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def _page(request: Request, session: Session, actor: Actor, project_id: str, *, values=None, errors=None,
          new_key=None, status_code: int = 200) -> Response:
    project = team.require_member(session=session, actor=actor, project_id=project_id)
    manager = team.can_manage(session=session, actor=actor, project_id=project_id)
    members = team.list_members(session=session, actor=actor, project_id=project_id)
    return render(
        request, "identity/keys.html", status_code, section="home", project=project, manager=manager,
        keys=team.list_keys(session=session, actor=actor, project_id=project_id) if manager else [],
        pis=[m for m in members if m.role == "pi"], values=values or {"name": "", "expires_in_days": ""},
        errors=errors or {}, new_key=new_key, base_url=public_base_url(request),
    )


@router.get("/projects/{project_id}/keys")
def keys(request: Request, session: DB, actor: PageUser, project_id: str) -> Response:
    return _page(request, session, actor, project_id)


@router.post("/projects/{project_id}/keys")
def create_key(request: Request, session: DB, actor: PageUser, project_id: str, name: FormStr = "",
               expires_in_days: FormStr = "") -> Response:
    values = {"name": name, "expires_in_days": expires_in_days}
    team.require_member(session=session, actor=actor, project_id=project_id)  # 404 before anything else
    if len(name.strip()) > 200:
        return _page(request, session, actor, project_id, values=values, status_code=400,
                     errors={"name": "Use at most 200 characters."})
    try:
        key, secret = attempt(session, lambda: team.create_key(
            session=session, actor=actor, project_id=project_id, name=name,
            expires_at=expiry_in_days(expires_in_days)))
    except JaifError as exc:
        if exc.status == 404:
            raise
        field = "expires_in_days" if exc.param == "expires_in_days" else "name"
        return _page(request, session, actor, project_id, values=values, errors={field: sentence(exc.message)},
                     status_code=exc.status)
    return _page(request, session, actor, project_id, new_key={"prefix": key.prefix, "secret": secret})


@router.post("/projects/{project_id}/keys/{key_id}/revoke")
def revoke_key(request: Request, session: DB, actor: PageUser, project_id: str, key_id: str) -> Response:
    key = team.revoke_key(session=session, actor=actor, project_id=project_id, key_id=key_id)
    flash(request, f"Key {key.prefix}… is revoked; it stops working within seconds.")
    return RedirectResponse(f"/projects/{project_id}/keys", status_code=303)
