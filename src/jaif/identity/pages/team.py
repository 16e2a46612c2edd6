"""A project's team page for its members: the members, and for its principal investigators (and
operators) inviting people by e-mail, withdrawing invitations and removing members; members may leave.
Its API keys are the keys page (keys.py). Who may do what is identity/team.py's to decide.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from jaif.errors import Conflict, InvalidRequest
from jaif.identity import team as team_service
from jaif.identity.deps import PageUser
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB, IdentityConf
from jaif.web.display import render
from jaif.web.forms import FormStr
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


def _team_page(request: Request, session, actor, project_id: str, *, status_code: int = 200, **extra) -> Response:
    project = team_service.require_member(session=session, actor=actor, project_id=project_id)
    manager = team_service.can_manage(session=session, actor=actor, project_id=project_id)
    context = {
        "project": project,
        "manager": manager,
        "actor": actor,
        "members": team_service.list_members(session=session, actor=actor, project_id=project_id),
        "invitations": team_service.list_invitations(session=session, actor=actor, project_id=project_id)
        if manager else [],
        "errors": {},
        "values": {},
    }
    context.update(extra)
    return render(request, "identity/team.html", status_code, **context)


@router.get("/projects/{project_id}/team")
def team(request: Request, session: DB, actor: PageUser, project_id: str) -> Response:
    return _team_page(request, session, actor, project_id)


@router.post("/projects/{project_id}/team/invitations")
def invite(request: Request, session: DB, actor: PageUser, conf: IdentityConf, mailer: MailerDep,
           project_id: str, email: FormStr = "", role: FormStr = "member") -> Response:
    try:
        sent = team_service.invite(session=session, actor=actor, project_id=project_id, email=email, role=role,
                                 settings=conf, mailer=mailer)
    except (InvalidRequest, Conflict) as exc:
        return _team_page(request, session, actor, project_id, status_code=exc.status,
                          errors={exc.param or "email": exc.message}, values={"email": email, "role": role})
    flash(request, f"We sent an invitation to {sent.email}.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


@router.post("/projects/{project_id}/team/invitations/{invitation_id}/revoke")
def revoke_invitation(request: Request, session: DB, actor: PageUser, project_id: str, invitation_id: str):
    team_service.revoke_invitation(session=session, actor=actor, project_id=project_id, invitation_id=invitation_id)
    flash(request, "The invitation is withdrawn.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


@router.post("/projects/{project_id}/team/members/{user_id}/remove")
def remove_member(request: Request, session: DB, actor: PageUser, project_id: str, user_id: str) -> Response:
    try:
        team_service.remove_member(session=session, actor=actor, project_id=project_id, user_id=user_id)
    except Conflict as exc:  # the last PI: say so on the team page
        flash(request, exc.message, "error")
        return RedirectResponse(f"/projects/{project_id}/team", status_code=303)
    if user_id == actor.user_id:
        flash(request, "You left the project.")
        return RedirectResponse("/account", status_code=303)
    flash(request, "The member is removed.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)
