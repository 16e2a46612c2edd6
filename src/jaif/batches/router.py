"""/v1/batches: OpenAI's Batch API (docs/batches.md). The work itself is the runner's (runner.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from jaif.access.deps import ProjectKey
from jaif.batches import service
from jaif.batches.schemas import BatchCreate, BatchList, BatchObject
from jaif.config import Settings
from jaif.files.store import FileStore
from jaif.web.api_errors import ApiError
from jaif.web.deps import DB

router = APIRouter(prefix="/v1", tags=["batches"])

ERRORS = {
    400: "invalid request: the message names the parameter (an endpoint, window or input file that does not fit)",
    401: "missing, unknown, revoked or expired API key",
    404: "no such batch (or input file) in the key's project",
    409: "the batch has ended and cannot be cancelled",
}


def errors(*statuses: int) -> dict[int | str, dict]:
    return {status: {"model": ApiError, "description": ERRORS[status]} for status in statuses}


@router.post("/batches", response_model=BatchObject,
             response_model_exclude_none=True, summary="Create a batch from an uploaded file of requests",
             responses=errors(400, 401, 404))  # fmt: skip
def create(request: Request, body: BatchCreate, session: DB, who: ProjectKey) -> BatchObject:
    settings: Settings = request.app.state.settings
    batch = service.create_batch(
        session=session, store=FileStore(settings.files_dir), project_id=who.project_id, api_key_id=who.key_id,
        body=body, max_line_bytes=settings.inference.max_body_bytes,
    )  # fmt: skip
    return service.batch_object(batch)


@router.get("/batches", response_model=BatchList,
             response_model_exclude_none=True, summary="The project's batches, newest first",
            responses=errors(400, 401, 404))  # fmt: skip
def list_batches(
    session: DB, who: ProjectKey, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> BatchList:
    return service.list_batches(session=session, project_id=who.project_id, after=after, limit=limit)


@router.get("/batches/{batch_id}", response_model=BatchObject,
             response_model_exclude_none=True, summary="A batch: status, counts, result files",
            responses=errors(401, 404))  # fmt: skip
def retrieve(batch_id: str, session: DB, who: ProjectKey) -> BatchObject:
    return service.batch_object(service.get_batch(session=session, project_id=who.project_id, batch_id=batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=BatchObject,
             response_model_exclude_none=True, summary="Cancel a batch",
             responses=errors(401, 404, 409))  # fmt: skip
def cancel(batch_id: str, session: DB, who: ProjectKey) -> BatchObject:
    return service.batch_object(service.cancel_batch(session=session, project_id=who.project_id, batch_id=batch_id))
