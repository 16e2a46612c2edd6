"""GET and DELETE /v1/responses/{response_id}, GET /v1/responses/{response_id}/input_items: a project's
stored responses (POST /v1/responses is a hot route: endpoint.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from jaif.inference import openapi as docs
from jaif.inference.router import Principal
from jaif.responses import service
from jaif.responses.openapi import InputItemList, Response, ResponseDeleted
from jaif.web.deps import DB

router = APIRouter(prefix="/v1/responses", tags=[docs.TAG])


@router.get("/{response_id}", summary="Retrieve a stored response", responses=docs.responses(Response))
def get_response(response_id: str, session: DB, who: Principal) -> dict:
    return service.get_response(session=session, project_id=who.project_id, response_id=response_id)


@router.delete("/{response_id}", summary="Delete a stored response", responses=docs.responses(ResponseDeleted))
def delete_response(response_id: str, session: DB, who: Principal) -> dict:
    return service.delete_response(session=session, project_id=who.project_id, response_id=response_id)


@router.get("/{response_id}/input_items", summary="List a stored response's input items",
            responses=docs.responses(InputItemList))  # fmt: skip
def list_input_items(
    response_id: str,
    session: DB,
    who: Principal,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> dict:
    return service.list_input_items(
        session=session, project_id=who.project_id, response_id=response_id, limit=limit, order=order, after=after
    )
