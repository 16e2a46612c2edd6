"""REST API of a project's API keys, for its principal investigators and operators.

The key itself is in the answer to POST only; afterwards only its prefix is shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response

from jaif.identity import team
from jaif.identity.deps import CurrentActor
from jaif.identity.schemas import KeyCreate, KeyCreated, KeyView
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/projects/{project_id}/keys", tags=["api keys"])


@router.get("", response_model=list[KeyView], summary="A project's API keys (PI or operator)",
            responses={**PAGED, **errors(400, 401, 403, 404)})
def list_keys(
    request: Request, response: Response, project_id: str, session: DB, actor: CurrentActor, page: Paging
) -> list[KeyView]:
    keys = team.list_keys(session=session, actor=actor, project_id=project_id)
    return [KeyView.model_validate(k) for k in api_paging.cut(keys, request, response, page)]


@router.post("", response_model=KeyCreated, status_code=201,
             summary="Create an API key of the project (PI or operator); the key is shown only here")
def create_key(project_id: str, body: KeyCreate, session: DB, actor: CurrentActor) -> KeyCreated:
    expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    key, secret = team.create_key(
        session=session, actor=actor, project_id=project_id, name=body.name, expires_at=expires_at,
        rpm_limit=body.rpm_limit, tpm_limit=body.tpm_limit,
    )
    return KeyCreated(**KeyView.model_validate(key).model_dump(), key=secret)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key of the project (by id or prefix)")
def revoke_key(project_id: str, key_id: str, session: DB, actor: CurrentActor) -> Response:
    team.revoke_key(session=session, actor=actor, project_id=project_id, key_id=key_id)
    return Response(status_code=204)
