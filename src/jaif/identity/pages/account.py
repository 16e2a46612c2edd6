"""Account pages: the user's profile, password and personal access tokens; accepting a project
invitation. A project's team is team.py, its API keys keys.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from jaif.errors import InvalidRequest, JaifError
from jaif.identity import pats, team
from jaif.identity import service as identity
from jaif.identity import sso as sso_service
from jaif.identity.deps import OptionalActor, PageUser
from jaif.identity.forms import expiry_in_days
from jaif.identity.pages.sign_in import start_session
from jaif.identity.service import FieldErrors
from jaif.web.deps import DB, IdentityConf
from jaif.web.display import message_page, render
from jaif.web.forms import FormStr
from jaif.web.session import flash, login_url

router = APIRouter(include_in_schema=False)


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
    return render(request, "identity/account.html", status_code, **context)


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
        invite = team.invitation(session=session, token=token)
    except JaifError as exc:
        return message_page(request, title="Invitation not valid", message=exc.message, status_code=exc.status)
    here = f"/invitations/{token}"
    return render(request, "identity/invitation.html", invite=invite, actor=actor, login=login_url(here),
                  signup=f"/signup?next={here}&email={invite.email}")


@router.post("/invitations/{token}")
def accept_invitation(request: Request, session: DB, actor: PageUser, token: str) -> Response:
    try:
        member = team.accept(session=session, token=token, user_id=actor.user_id or "")
    except JaifError as exc:
        return message_page(request, title="Invitation not accepted", message=exc.message, status_code=exc.status)
    flash(request, "You joined the project.")
    return RedirectResponse(f"/projects/{member.project_id}/team", status_code=303)
