"""Sign-up, sign-in and out, e-mail verification, password reset and single sign-on pages.

Views stay thin: read the form, call one identity service, render or redirect. A form with a mistake
comes back with the error next to its field and what was typed kept (400), never a 500.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from jaif.access.models import User
from jaif.errors import InvalidRequest, JaifError, RateLimited
from jaif.identity import service as identity
from jaif.identity import sso as sso_service
from jaif.identity.deps import OptionalActor, PageUser
from jaif.identity.models import TokenPurpose
from jaif.identity.oidc import SsoProviders
from jaif.identity.service import FieldErrors
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB, IdentityConf, public_base_url
from jaif.web.display import message_page, render
from jaif.web.forms import FormStr
from jaif.web.session import flash, safe_next, session_id, sign_in, sign_out

router = APIRouter(include_in_schema=False)


def _providers(request: Request) -> SsoProviders:
    return request.app.state.sso


def start_session(request: Request, session, user: User) -> None:
    """Record a server session for the user and give this browser a fresh cookie naming it."""
    sid = identity.start_session(session=session, user=user, settings=request.app.state.settings.identity)
    sign_in(request, session_id=sid, user_id=user.id, email=user.email, name=user.name, role=user.role)


def _continue(next_path: str | None) -> RedirectResponse:
    return RedirectResponse(safe_next(next_path), status_code=303)


# --- sign-up ---------------------------------------------------------------------------------------------


def _signup_page(request: Request, session, *, values: dict, errors: dict, status_code: int = 200) -> Response:
    # No list of organisations: it would show anonymous visitors every customer of the factory (issue 9).
    # The organisation is named when applying (applications/pages/steps.py), and confirmed (access/membership.py).
    return render(request, "identity/signup.html", status_code, values=values, errors=errors,
                  providers=list(_providers(request)))


@router.get("/signup")
def signup_form(request: Request, session: DB, conf: IdentityConf, actor: OptionalActor,
                next: str = "/", email: str = "") -> Response:
    if not conf.allow_signup:
        return message_page(request, title="Sign-up is closed", status_code=403,
                            message="Accounts here are created by the operators, by invitation or by single sign-on.")
    if actor is not None:
        return _continue(next)
    return _signup_page(request, session, values={"next": safe_next(next), "email": email[:320]}, errors={})


@router.post("/signup")
def signup(request: Request, session: DB, conf: IdentityConf, mailer: MailerDep, email: FormStr = "",
           name: FormStr = "", password: FormStr = "", next: FormStr = "/") -> Response:
    if not conf.allow_signup:
        return message_page(request, title="Sign-up is closed", status_code=403,
                            message="Accounts here are created by the operators, by invitation or by single sign-on.")
    values = {"email": email, "name": name, "next": safe_next(next)}
    try:
        user = identity.sign_up(session=session, email=email, name=name, password=password,
                                organisation_id=None, settings=conf, mailer=mailer)
    except FieldErrors as exc:
        return _signup_page(request, session, values=values, errors=exc.errors, status_code=400)
    start_session(request, session, user)
    flash(request, f"Welcome, {user.name}! We sent a link to {user.email}: open it to confirm your address.")
    return _continue(next)


# --- sign-in and out ---------------------------------------------------------------------------------------


def _login_page(request: Request, *, email: str = "", next: str = "/", error: str = "", status_code: int = 200,
                errors: dict[str, str] | None = None, headers: dict[str, str] | None = None):
    response = render(request, "identity/login.html", status_code, email=email, next=safe_next(next), error=error,
                      errors=errors or {}, providers=list(_providers(request)),
                      allow_signup=request.app.state.settings.identity.allow_signup)
    response.headers.update(headers or {})
    return response


@router.get("/login")
def login_form(request: Request, actor: OptionalActor, next: str = "/") -> Response:
    if actor is not None:
        return _continue(next)
    return _login_page(request, next=next)


@router.post("/login")
def login(request: Request, session: DB, conf: IdentityConf, email: FormStr = "", password: FormStr = "",
          next: FormStr = "/") -> Response:
    address = request.client.host if request.client else None
    try:
        user = identity.sign_in(session=session, settings=conf, email=email, password=password, address=address)
    except RateLimited as exc:  # too many failed sign-ins: said next to the e-mail address, and above the form
        wait = {"retry-after": str(max(1, math.ceil(exc.retry_after or 1)))}
        return _login_page(request, email=email, next=next, error=exc.message, status_code=exc.status,
                           errors={"email": exc.message}, headers=wait)
    except JaifError as exc:
        return _login_page(request, email=email, next=next, error=exc.message, status_code=exc.status)
    start_session(request, session, user)
    return _continue(next)


@router.post("/logout")
def logout(request: Request, session: DB) -> Response:
    identity.end_session(session=session, session_id=session_id(request))  # a copy of the cookie ends too
    sign_out(request)
    flash(request, "You are signed out.", "info")
    return RedirectResponse("/", status_code=303)


# --- e-mail verification -------------------------------------------------------------------------------------


@router.get("/verify-email")
def verify_email(request: Request, session: DB, actor: OptionalActor, token: str = "") -> Response:
    try:
        user = identity.verify_email(session=session, token=token)
    except InvalidRequest as exc:
        return message_page(request, title="E-mail address not confirmed", message=exc.message, status_code=400,
                            link=("/account", "Send a new link from your account page"))
    # Confirming the address ended the account's earlier sessions and tokens; this browser, signed in to
    # the account, stays signed in with a new session.
    here = actor is not None and actor.user_id == user.id
    if here:
        start_session(request, session, user)
    flash(request, f"Thank you: {user.email} is confirmed.")
    return RedirectResponse("/account" if here else "/", status_code=303)


@router.post("/verify-email/resend")
def resend_verification(request: Request, session: DB, actor: PageUser, conf: IdentityConf,
                        mailer: MailerDep) -> Response:
    user = identity.get_user(session=session, user_id=actor.user_id or "")
    if user.email_verified_at is not None:
        flash(request, "Your e-mail address is confirmed already.", "info")
    else:
        identity.send_verification(session=session, user=user, settings=conf, mailer=mailer)
        flash(request, f"We sent a new link to {user.email}.")
    return RedirectResponse("/account", status_code=303)


# --- password reset --------------------------------------------------------------------------------------------


@router.get("/forgot-password")
def forgot_password_form(request: Request, email: str = "") -> Response:
    return render(request, "identity/forgot_password.html", values={"email": email[:320]}, errors={})


@router.post("/forgot-password")
def forgot_password(request: Request, session: DB, conf: IdentityConf, mailer: MailerDep,
                    email: FormStr = "") -> Response:
    if problem := identity.email_problem(identity.normalise_email(email)):
        return render(request, "identity/forgot_password.html", 400, values={"email": email}, errors={"email": problem})
    identity.request_password_reset(session=session, email=email, settings=conf, mailer=mailer)
    return message_page(
        request, title="Check your e-mail",
        message=f"If an account has the address {email.strip()}, we sent it a link to choose a new password. "
        f"The link works for {conf.reset_password_hours:g} hours.",
    )


@router.get("/reset-password")
def reset_password_form(request: Request, session: DB, token: str = "") -> Response:
    try:
        identity.find_one_time(session=session, purpose=TokenPurpose.reset_password, secret=token)
    except InvalidRequest as exc:
        return message_page(request, title="Password not reset", message=exc.message, status_code=400,
                            link=("/forgot-password", "Ask for a new link"))
    return render(request, "identity/reset_password.html", token=token, errors={})


@router.post("/reset-password")
def reset_password(request: Request, session: DB, conf: IdentityConf, token: FormStr = "",
                   password: FormStr = "") -> Response:
    try:
        user = identity.reset_password(session=session, token=token, password=password, settings=conf)
    except FieldErrors as exc:
        return render(request, "identity/reset_password.html", 400, token=token, errors=exc.errors)
    except InvalidRequest as exc:
        return message_page(request, title="Password not reset", message=exc.message, status_code=400,
                            link=("/forgot-password", "Ask for a new link"))
    start_session(request, session, user)
    flash(request, "Your new password is set, and you are signed in.")
    return RedirectResponse("/", status_code=303)


# --- single sign-on -----------------------------------------------------------------------------------------------


@router.get("/login/sso/{name}")
async def sso_start(request: Request, name: str, next: Annotated[str, Query()] = "/") -> Response:
    providers = _providers(request)
    try:
        providers.get(name)
        request.session["sso_next"] = safe_next(next)
        callback = public_base_url(request) + request.app.url_path_for("sso_callback", name=name)
        return await providers.redirect(request, name, redirect_uri=callback)
    except JaifError as exc:
        return _login_page(request, next=next, error=exc.message, status_code=exc.status)


@router.get("/login/sso/{name}/callback", name="sso_callback")
async def sso_callback(request: Request, name: str, session: DB) -> Response:
    providers = _providers(request)
    next_path = safe_next(request.session.pop("sso_next", "/"))
    try:
        provider = providers.get(name)
        claims = await providers.claims(request, name)
        sid = session_id(request)

        def finish() -> sso_service.SsoResult:  # database work, off the event loop
            signed_in = identity.actor_from_session(session=session, session_id=sid)
            found = sso_service.sign_in(session=session, provider=provider, claims=claims,
                                        current_user_id=signed_in.user_id if signed_in else None)
            start_session(request, session, found.user)
            return found

        result = await run_in_threadpool(finish)
    except JaifError as exc:
        return _login_page(request, next=next_path, error=exc.message, status_code=exc.status)
    if result.created:
        flash(request, f"Welcome, {result.user.name}! Your account was created with {provider.display_name}.")
    elif result.linked:
        flash(request, f"{provider.display_name} is now linked to your account.")
    return _continue(next_path)
