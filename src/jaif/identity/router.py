"""REST API of identity: the current user, their personal access tokens, a project's members and
invitations. Same permissions as the portal (see identity/team.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response

from jaif.access.schemas import Actor
from jaif.errors import InvalidRequest
from jaif.identity import pats, team
from jaif.identity import service as identity
from jaif.identity.deps import CurrentActor, Operator
from jaif.identity.schemas import (
    InvitationCreate,
    InvitationView,
    Me,
    MemberView,
    TokenCreate,
    TokenCreated,
    TokenView,
    UserPatch,
    UserView,
)
from jaif.notify.deps import MailerDep
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB, IdentityConf

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/me", response_model=Me, summary="The current user, with roles, organisation and projects")
def get_me(session: DB, actor: CurrentActor) -> Me:
    return identity.me(session=session, actor=actor)


@router.get("/users", response_model=list[UserView], summary="Accounts (operators): search, filter by role",
            responses={**PAGED, **errors(400, 401, 403)})
def list_users(
    request: Request, response: Response, session: DB, actor: Operator, page: Paging,
    search: str | None = None, role: Literal["user", "reviewer", "operator"] | None = None,
    active: bool | None = None,
) -> list[UserView]:
    """By e-mail address. ``search`` finds a part of the address or the name."""
    found = identity.list_users(session=session, actor=actor, search=search, role=role, active=active,
                                limit=page.limit, offset=page.offset)
    total = identity.count_users(session=session, actor=actor, search=search, role=role, active=active)
    api_paging.send(request, response, page, total)
    return [UserView.model_validate(u) for u in found]


@router.patch("/users/{user_id}", response_model=UserView, summary="Change an account's role, or deactivate it "
              "(operators)", responses=errors(400, 401, 403, 404))
def change_user(user_id: str, body: UserPatch, session: DB, actor: Operator) -> UserView:
    """The account's sessions end. An operator cannot demote or deactivate themselves."""
    email = identity.get_user(session=session, user_id=user_id).email
    user = identity.change_user(session=session, actor=actor, email=email, role=body.role, active=body.is_active)
    return UserView.model_validate(user)


@router.get("/me/tokens", response_model=list[TokenView], summary="Your personal access tokens",
            responses={**PAGED, **errors(400, 401)})
def list_tokens(
    request: Request, response: Response, session: DB, actor: CurrentActor, page: Paging
) -> list[TokenView]:
    found = pats.list_for(session=session, user_id=_user_id(actor))
    return [TokenView.model_validate(t) for t in api_paging.cut(found, request, response, page)]


@router.post("/me/tokens", response_model=TokenCreated, status_code=201,
             summary="Create a personal access token (shown only in this answer)")
def create_token(body: TokenCreate, session: DB, actor: CurrentActor) -> TokenCreated:
    expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, secret = pats.create(session=session, user_id=_user_id(actor), name=body.name, expires_at=expires_at)
    return TokenCreated(**TokenView.model_validate(row).model_dump(), token=secret)


@router.delete("/me/tokens/{token_id}", status_code=204, summary="Revoke one of your tokens (by id or prefix)")
def revoke_token(token_id: str, session: DB, actor: CurrentActor) -> Response:
    pats.revoke(session=session, user_id=_user_id(actor), token_id=token_id)
    return Response(status_code=204)


@router.get("/projects/{project_id}/members", response_model=list[MemberView], summary="A project's members",
            responses={**PAGED, **errors(400, 401, 404)})
def list_members(
    request: Request, response: Response, project_id: str, session: DB, actor: CurrentActor, page: Paging
) -> list[MemberView]:
    found = team.list_members(session=session, actor=actor, project_id=project_id)
    return api_paging.cut(found, request, response, page)


@router.delete("/projects/{project_id}/members/{user_id}", status_code=204,
               summary="Remove a member (PI or operator), or leave the project yourself")
def remove_member(project_id: str, user_id: str, session: DB, actor: CurrentActor) -> Response:
    team.remove_member(session=session, actor=actor, project_id=project_id, user_id=user_id)
    return Response(status_code=204)


@router.get("/projects/{project_id}/invitations", response_model=list[InvitationView],
            summary="A project's pending invitations (PI or operator)",
            responses={**PAGED, **errors(400, 401, 403, 404)})
def list_invitations(
    request: Request, response: Response, project_id: str, session: DB, actor: CurrentActor, page: Paging
) -> list[InvitationView]:
    found = team.list_invitations(session=session, actor=actor, project_id=project_id)
    return api_paging.cut(found, request, response, page)


@router.post("/projects/{project_id}/invitations", response_model=InvitationView, status_code=201,
             summary="Invite someone by e-mail (PI or operator); the link goes to that address only")
def invite(project_id: str, body: InvitationCreate, session: DB, actor: CurrentActor, conf: IdentityConf,
           mailer: MailerDep) -> InvitationView:
    return team.invite(session=session, actor=actor, project_id=project_id, email=body.email, role=body.role,
                             settings=conf, mailer=mailer)


@router.delete("/projects/{project_id}/invitations/{invitation_id}", status_code=204,
               summary="Withdraw a pending invitation (PI or operator)")
def revoke_invitation(project_id: str, invitation_id: str, session: DB, actor: CurrentActor) -> Response:
    team.revoke_invitation(session=session, actor=actor, project_id=project_id, invitation_id=invitation_id)
    return Response(status_code=204)


def _user_id(actor: Actor) -> str:
    if actor.user_id is None:
        raise InvalidRequest("personal access tokens belong to user accounts")
    return actor.user_id
