"""/v1/batches: OpenAI's Batch API (docs/batches.md). The work itself is the runner's (runner.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from jaif.access.deps import ProjectKey
from jaif.batches import service
from jaif.batches.schemas import BatchCreate, BatchList, BatchObject
from jaif.config import Settings
from jaif.files.store import FileStore
from jaif.web.deps import DB

router = APIRouter(prefix="/v1", tags=["batches"])


@router.post("/batches", response_model=BatchObject, summary="Create a batch from an uploaded file of requests")
def create(request: Request, body: BatchCreate, session: DB, who: ProjectKey) -> BatchObject:
    settings: Settings = request.app.state.settings
    batch = service.create_batch(
        session=session, store=FileStore(settings.files_dir), project_id=who.project_id, api_key_id=who.key_id,
        body=body, max_line_bytes=settings.inference.max_body_bytes,
    )  # fmt: skip
    return service.batch_object(batch)


@router.get("/batches", response_model=BatchList, summary="The project's batches, newest first")
def list_batches(
    session: DB, who: ProjectKey, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> BatchList:
    return service.list_batches(session=session, project_id=who.project_id, after=after, limit=limit)


@router.get("/batches/{batch_id}", response_model=BatchObject, summary="A batch: status, counts, result files")
def retrieve(batch_id: str, session: DB, who: ProjectKey) -> BatchObject:
    return service.batch_object(service.get_batch(session=session, project_id=who.project_id, batch_id=batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=BatchObject, summary="Cancel a batch")
def cancel(batch_id: str, session: DB, who: ProjectKey) -> BatchObject:
    return service.batch_object(service.cancel_batch(session=session, project_id=who.project_id, batch_id=batch_id))
