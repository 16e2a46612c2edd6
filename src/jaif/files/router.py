"""/v1/files: OpenAI's Files API for a project's batch files (docs/batches.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse

from jaif.access.deps import ProjectKey
from jaif.batches import service as batches
from jaif.config import Settings
from jaif.db.engine import transaction
from jaif.errors import Conflict
from jaif.files import service
from jaif.files.schemas import FileDeleted, FileList, FileObject
from jaif.files.store import FileStore
from jaif.files.upload import receive_upload
from jaif.web.api_errors import ApiError
from jaif.web.deps import DB

router = APIRouter(prefix="/v1", tags=["files"])

ERRORS = {
    400: "invalid request: a wrong field, purpose or batch line (the message names it), too many files",
    401: "missing, unknown, revoked or expired API key",
    404: "no such file in the key's project",
    409: "the file is the input of a batch still running",
    413: "the file is larger than files.max_bytes",
}


def errors(*statuses: int) -> dict[int | str, dict]:
    return {status: {"model": ApiError, "description": ERRORS[status]} for status in statuses}


# POST /v1/files reads its multipart body itself (files/upload.py); this documents it.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file", "purpose"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "batch: JSON Lines, one request a line; user_data: any file (a job's input)"},
                "purpose": {"type": "string", "enum": ["batch", "user_data"]},
            },
        }}},
    }
}  # fmt: skip


def _store(request: Request) -> FileStore:
    settings: Settings = request.app.state.settings
    return FileStore(settings.files_dir)


def _in_transaction(request: Request, work, /, **kwargs):
    with transaction(request.app.state.runtime.session_factory) as session:
        return work(session=session, **kwargs)


@router.post("/files", response_model=FileObject,
             summary="Upload a file (purpose `batch`: a batch's requests; `user_data`: a job's input)",
             openapi_extra=UPLOAD_BODY, responses=errors(400, 401, 413))  # fmt: skip
async def upload(request: Request, who: ProjectKey) -> FileObject:
    """multipart/form-data with `file` and `purpose`. The file is written to disk as it arrives, its size
    bounded while it is read; a batch file is then checked line by line (a user_data file is any file)."""
    settings: Settings = request.app.state.settings
    store = _store(request)
    await asyncio.to_thread(_in_transaction, request, service.check_room, project_id=who.project_id,
                            max_files=settings.files.max_per_project)  # fmt: skip
    temporary = store.temporary()
    try:
        received = await receive_upload(request, temporary, max_bytes=settings.files.max_bytes)
        purpose = service.check_purpose(received.fields.get("purpose"))
        lines = 0
        if purpose == "batch":  # a user_data file (a job's input) is any file
            lines = await asyncio.to_thread(batches.check_input, temporary, max_lines=settings.files.max_lines,
                                            max_line_bytes=settings.inference.max_body_bytes)  # fmt: skip
        row = await asyncio.to_thread(
            _in_transaction, request, service.add_file, store=store, source=temporary, project_id=who.project_id,
            purpose=purpose, filename=received.filename or "upload.jsonl", lines=lines,
        )  # fmt: skip
    finally:
        temporary.unlink(missing_ok=True)
    return service.file_object(row)


@router.get("/files", response_model=FileList,
             response_model_exclude_none=True, summary="The project's files, newest first",
            responses=errors(400, 401, 404))  # fmt: skip
def list_files(
    session: DB,
    who: ProjectKey,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
) -> FileList:
    return service.list_files(session=session, project_id=who.project_id, purpose=purpose, after=after, limit=limit,
                              order=order)  # fmt: skip


@router.get("/files/{file_id}", response_model=FileObject, summary="A file's description",
            responses=errors(401, 404))  # fmt: skip
def retrieve(file_id: str, session: DB, who: ProjectKey) -> FileObject:
    return service.file_object(service.get_file(session=session, project_id=who.project_id, file_id=file_id))


@router.get("/files/{file_id}/content", response_class=FileResponse, summary="A file's content",
            responses={200: {"content": {"application/jsonl": {}, "application/octet-stream": {}},
                             "description": "The file's bytes (JSON Lines; a user_data file: any bytes)"},
                       **errors(401, 404)})  # fmt: skip
def content(request: Request, file_id: str, session: DB, who: ProjectKey) -> FileResponse:
    row = service.get_file(session=session, project_id=who.project_id, file_id=file_id)
    path = service.file_path(store=_store(request), file=row)
    media_type = "application/octet-stream" if row.purpose == service.INPUT_PURPOSE else "application/jsonl"
    return FileResponse(path, media_type=media_type, filename=row.filename)


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file",
               responses=errors(401, 404, 409))  # fmt: skip
def delete(request: Request, file_id: str, session: DB, who: ProjectKey) -> FileDeleted:
    service.get_file(session=session, project_id=who.project_id, file_id=file_id)
    if batches.input_in_use(session=session, project_id=who.project_id, file_id=file_id):
        raise Conflict(f"The file {file_id} is the input of a batch still running; delete it once the batch has ended.",
                       param="file_id", code="file_in_use")  # fmt: skip
    service.delete_file(session=session, store=_store(request), project_id=who.project_id, file_id=file_id)
    return FileDeleted(id=file_id)
