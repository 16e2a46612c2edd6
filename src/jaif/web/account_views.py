"""Account pages: the user's profile, password and personal access tokens; accepting a project
invitation; a project's team page (members, invitations, API keys) for its PIs; the operator's outbox.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from jaif.errors import Conflict, InvalidRequest, JaifError
from jaif.identity import pats
from jaif.identity import service as identity
from jaif.identity import sso as sso_service
from jaif.identity import team as membership
from jaif.identity.service import FieldErrors
from jaif.notify import service as notify
from jaif.web.auth_views import message_page, render, start_session
from jaif.web.deps import DB, IdentityConf, MailerDep, OptionalActor, PageOperator, PageUser
from jaif.web.pages.common import expiry_in_days
from jaif.web.session import flash, login_url

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]


# --- the account page ---------------------------------------------------------------------------------------


def _account_page(request: Request, session, actor, *, status_code: int = 200, **extra) -> Response:
    me = identity.me(session=session, actor=actor)
    context = {
        "me": me,
        "tokens": pats.list_for(session=session, user_id=me.id),
        "identities": sso_service.identities_of(session=session, user_id=me.id),
        "providers": list(request.app.state.sso),
        "has_password": identity.get_user(session=session, user_id=me.id).password_hash is not None,
        "errors": {},
        "values": {},
        "new_token": None,
    }
    context.update(extra)
    return render(request, "auth/account.html", status_code, **context)


@router.get("/account")
def account(request: Request, session: DB, actor: PageUser) -> Response:
    return _account_page(request, session, actor)


@router.post("/account/password")
def change_password(request: Request, session: DB, actor: PageUser, conf: IdentityConf,
                    current_password: FormStr = "", password: FormStr = "") -> Response:
    try:
        user = identity.change_password(session=session, user_id=actor.user_id or "", current=current_password,
                                        new=password, settings=conf)
    except FieldErrors as exc:
        return _account_page(request, session, actor, status_code=400, errors=exc.errors)
    # The change ended every session of the account: this browser stays signed in with a new one.
    start_session(request, session, user)
    flash(request, "Your password is changed. Other browsers signed in to your account are signed out.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens")
def create_token(request: Request, session: DB, actor: PageUser, token_name: FormStr = "",
                 expires_in_days: FormStr = "") -> Response:
    values = {"token_name": token_name, "expires_in_days": expires_in_days}
    try:
        row, secret = pats.create(session=session, user_id=actor.user_id or "", name=token_name,
                                  expires_at=expiry_in_days(expires_in_days))
    except InvalidRequest as exc:
        field = "token_name" if exc.param == "name" else (exc.param or "token_name")
        return _account_page(request, session, actor, status_code=400, errors={field: exc.message}, values=values)
    return _account_page(request, session, actor, new_token={"prefix": row.prefix, "secret": secret})


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, session: DB, actor: PageUser, token_id: str) -> Response:
    row = pats.revoke(session=session, user_id=actor.user_id or "", token_id=token_id)
    flash(request, f"Token {row.prefix}… is revoked.")
    return RedirectResponse("/account", status_code=303)


# --- invitations --------------------------------------------------------------------------------------------


@router.get("/invitations/{token}")
def invitation(request: Request, session: DB, actor: OptionalActor, token: str) -> Response:
    try:
        invite = membership.invitation(session=session, token=token)
    except JaifError as exc:
        return message_page(request, title="Invitation not valid", message=exc.message, status_code=exc.status)
    here = f"/invitations/{token}"
    return render(request, "auth/invitation.html", invite=invite, actor=actor, login=login_url(here),
                  signup=f"/signup?next={here}&email={invite.email}")


@router.post("/invitations/{token}")
def accept_invitation(request: Request, session: DB, actor: PageUser, token: str) -> Response:
    try:
        member = membership.accept(session=session, token=token, user_id=actor.user_id or "")
    except JaifError as exc:
        return message_page(request, title="Invitation not accepted", message=exc.message, status_code=exc.status)
    flash(request, "You joined the project.")
    return RedirectResponse(f"/projects/{member.project_id}/team", status_code=303)


# --- a project's team page ----------------------------------------------------------------------------------


def _team_page(request: Request, session, actor, project_id: str, *, status_code: int = 200, **extra) -> Response:
    project = membership.require_member(session=session, actor=actor, project_id=project_id)
    manager = membership.can_manage(session=session, actor=actor, project_id=project_id)
    context = {
        "project": project,
        "manager": manager,
        "actor": actor,
        "members": membership.list_members(session=session, actor=actor, project_id=project_id),
        "invitations": membership.list_invitations(session=session, actor=actor, project_id=project_id)
        if manager else [],
        "keys": membership.list_keys(session=session, actor=actor, project_id=project_id) if manager else [],
        "errors": {},
        "values": {},
        "new_key": None,
    }
    context.update(extra)
    return render(request, "auth/team.html", status_code, **context)


@router.get("/projects/{project_id}/team")
def team(request: Request, session: DB, actor: PageUser, project_id: str) -> Response:
    return _team_page(request, session, actor, project_id)


@router.post("/projects/{project_id}/team/invitations")
def invite(request: Request, session: DB, actor: PageUser, conf: IdentityConf, mailer: MailerDep,
           project_id: str, email: FormStr = "", role: FormStr = "member") -> Response:
    try:
        sent = membership.invite(session=session, actor=actor, project_id=project_id, email=email, role=role,
                                 settings=conf, mailer=mailer)
    except (InvalidRequest, Conflict) as exc:
        return _team_page(request, session, actor, project_id, status_code=exc.status,
                          errors={exc.param or "email": exc.message}, values={"email": email, "role": role})
    flash(request, f"We sent an invitation to {sent.email}.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


@router.post("/projects/{project_id}/team/invitations/{invitation_id}/revoke")
def revoke_invitation(request: Request, session: DB, actor: PageUser, project_id: str, invitation_id: str):
    membership.revoke_invitation(session=session, actor=actor, project_id=project_id, invitation_id=invitation_id)
    flash(request, "The invitation is withdrawn.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


@router.post("/projects/{project_id}/team/members/{user_id}/remove")
def remove_member(request: Request, session: DB, actor: PageUser, project_id: str, user_id: str) -> Response:
    try:
        membership.remove_member(session=session, actor=actor, project_id=project_id, user_id=user_id)
    except Conflict as exc:  # the last PI: say so on the team page
        flash(request, exc.message, "error")
        return RedirectResponse(f"/projects/{project_id}/team", status_code=303)
    if user_id == actor.user_id:
        flash(request, "You left the project.")
        return RedirectResponse("/account", status_code=303)
    flash(request, "The member is removed.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


@router.post("/projects/{project_id}/team/keys")
def create_key(request: Request, session: DB, actor: PageUser, project_id: str, key_name: FormStr = "",
               key_expires_in_days: FormStr = "") -> Response:
    values = {"key_name": key_name, "key_expires_in_days": key_expires_in_days}
    try:
        key, secret = membership.create_key(session=session, actor=actor, project_id=project_id, name=key_name,
                                            expires_at=expiry_in_days(key_expires_in_days))
    except InvalidRequest as exc:
        field = {"expires_in_days": "key_expires_in_days"}.get(exc.param or "", "key_name")
        return _team_page(request, session, actor, project_id, status_code=400, errors={field: exc.message},
                          values=values)
    return _team_page(request, session, actor, project_id, new_key={"prefix": key.prefix, "secret": secret})


@router.post("/projects/{project_id}/team/keys/{key_id}/revoke")
def revoke_key(request: Request, session: DB, actor: PageUser, project_id: str, key_id: str) -> Response:
    key = membership.revoke_key(session=session, actor=actor, project_id=project_id, key_id=key_id)
    flash(request, f"Key {key.prefix}… is revoked; it stops working within seconds.")
    return RedirectResponse(f"/projects/{project_id}/team", status_code=303)


# --- the operator's outbox --------------------------------------------------------------------------------------


@router.get("/operator/outbox")
def outbox(request: Request, session: DB, actor: PageOperator, to: str = "") -> Response:
    notes = notify.list_notifications(session=session, limit=200, to=to.strip() or None)
    smtp = request.app.state.settings.smtp
    return render(request, "auth/outbox.html", notes=notes, to=to, smtp_host=smtp.host,
                  folder=str(request.app.state.settings.outbox_dir))
