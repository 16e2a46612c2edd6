"""A project's files in the portal (``/projects/{id}/files``), as Open OnDemand's file browser has them: the
list (uploaded here or through /v1/files, and batches' results), an upload, a download and deleting one.

The same files as /v1/files (files/service.py), for the project's members and operators; another project's
files do not exist for a user (404). An upload is refused before it is read when the project keeps
``files.max_per_project`` files, and while it is read once it passes ``files.max_bytes``: the error beside
the field, nothing kept. Its form posts to the one path ``/files/upload?project=ID`` (the body limit lets
that path, as /v1/files, carry a whole file).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import FileResponse, RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.batches import service as batches
from jaif.config import Settings
from jaif.db.engine import transaction
from jaif.errors import InvalidRequest, JaifError
from jaif.files import service
from jaif.files.models import StoredFile
from jaif.files.store import FileStore
from jaif.files.upload import PAGE_UPLOAD_PATH, receive_upload
from jaif.identity import team
from jaif.identity.deps import PageUser, optional_actor, require_user
from jaif.web.deps import DB
from jaif.web.display import render, sentence, when
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)

UPLOAD_PATH = PAGE_UPLOAD_PATH  # its own limit on the body's size (app.py)
PAGE_FIELDS = ("csrf_token", "purpose", "file")
PURPOSES = [
    ("user_data", "A job's input: any file, copied into the job's directory"),
    ("batch", "Batch API requests: JSON Lines, one request a line (checked as it is uploaded)"),
]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> FileStore:
    return FileStore(_settings(request).files_dir)


def _page(request: Request, session: Session, actor: Actor, project_id: str, *, errors: dict | None = None,
          purpose: str = "user_data", status_code: int = 200) -> Response:
    project = team.require_member(session=session, actor=actor, project_id=project_id)  # 404 for others
    settings = _settings(request)
    files = service.list_files(session=session, project_id=project.id, limit=settings.files.max_per_project)
    return render(request, "files/list.html", status_code, section="home", project=project, files=files.data,
                  errors=errors or {}, purposes=PURPOSES, purpose=purpose, upload_path=UPLOAD_PATH,
                  max_bytes=settings.files.max_bytes, max_files=settings.files.max_per_project, stamp=_stamp)


def _stamp(seconds: int) -> str:
    return when(datetime.fromtimestamp(seconds, UTC))


@router.get("/projects/{project_id}/files")
def files_page(request: Request, session: DB, actor: PageUser, project_id: str) -> Response:
    return _page(request, session, actor, project_id)


def _in_transaction(request: Request, work, /, **kwargs):
    with transaction(request.app.state.runtime.session_factory) as session:
        return work(session=session, **kwargs)


def _check_room(*, session: Session, actor: Actor, project_id: str, max_files: int) -> str:
    project = team.require_member(session=session, actor=actor, project_id=project_id)
    service.check_room(session=session, project_id=project.id, max_files=max_files)
    return project.id


def _refused(*, session: Session, request: Request, actor: Actor, project_id: str, exc: JaifError,
             purpose: str) -> Response:
    field = exc.param if exc.param in ("purpose", "file") else "file"
    request.state.db = session  # the navigation's badge reads through it (web/deps.py)
    return _page(request, session, actor, project_id, errors={field: sentence(exc.message)}, purpose=purpose,
                 status_code=exc.status)


def _signed_in(*, session: Session, request: Request) -> Actor:
    return require_user(request, optional_actor(request, session))


@router.post(UPLOAD_PATH)
async def upload_file(request: Request, project: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The upload form: the file is written to disk as it arrives, bounded as it is read. No transaction is
    held while it arrives (on SQLite one would hold the write lock): who uploads, the room left, the new
    row and an error page each take a short one of their own."""
    settings = _settings(request)
    store = _store(request)
    purpose = "user_data"
    actor = await asyncio.to_thread(_in_transaction, request, _signed_in, request=request)
    try:
        project_id = await asyncio.to_thread(_in_transaction, request, _check_room, actor=actor, project_id=project,
                                             max_files=settings.files.max_per_project)
    except JaifError as exc:
        if exc.status == 404:
            raise
        return await asyncio.to_thread(_in_transaction, request, _refused, request=request, actor=actor,
                                       project_id=project, exc=exc, purpose=purpose)
    temporary = store.temporary()
    try:
        try:
            received = await receive_upload(request, temporary, max_bytes=settings.files.max_bytes,
                                            fields=PAGE_FIELDS)
            purpose = received.fields.get("purpose", "") or purpose
            row = await asyncio.to_thread(_keep, request, temporary, project_id, purpose, received.filename,
                                          received.size)
        except JaifError as exc:
            if exc.status == 404:
                raise
            return await asyncio.to_thread(_in_transaction, request, _refused, request=request, actor=actor,
                                           project_id=project_id, exc=exc, purpose=purpose)
    finally:
        temporary.unlink(missing_ok=True)
    flash(request, f"{row.filename} is uploaded as {row.id}.", "success")
    return RedirectResponse(f"/projects/{quote(project_id, safe='')}/files", status_code=303)


def _keep(request: Request, temporary: Path, project_id: str, purpose: str, filename: str | None,
          size: int) -> StoredFile:
    """Check what was received (its purpose; a batch file line by line) and keep it."""
    settings = _settings(request)
    if purpose not in dict(PURPOSES):
        service.check_purpose(purpose)  # raises, naming the purposes
    if size == 0:
        raise InvalidRequest("Choose a file to upload (an empty file is not kept).", param="file")
    lines = 0
    if purpose == "batch":
        lines = batches.check_input(temporary, max_lines=settings.files.max_lines,
                                    max_line_bytes=settings.inference.max_body_bytes)
    return _in_transaction(request, service.add_file, store=_store(request), source=temporary, project_id=project_id,
                           purpose=purpose, filename=filename or "upload", lines=lines)


@router.get("/projects/{project_id}/files/{file_id}/content")
def download_file(request: Request, session: DB, actor: PageUser, project_id: str, file_id: str) -> Response:
    project = team.require_member(session=session, actor=actor, project_id=project_id)
    row = service.get_file(session=session, project_id=project.id, file_id=file_id)
    path = service.file_path(store=_store(request), file=row)
    return FileResponse(path, media_type="application/octet-stream", filename=row.filename)


@router.post("/projects/{project_id}/files/{file_id}/delete")
def delete_file(request: Request, session: DB, actor: PageUser, project_id: str, file_id: str) -> Response:
    project = team.require_member(session=session, actor=actor, project_id=project_id)
    row = service.get_file(session=session, project_id=project.id, file_id=file_id)
    if batches.input_in_use(session=session, project_id=project.id, file_id=file_id):
        flash(request, f"{row.filename} is the input of a batch still running; delete it once the batch has ended.",
              "error")
    else:
        service.delete_file(session=session, store=_store(request), project_id=project.id, file_id=file_id)
        flash(request, f"{row.filename} ({file_id}) is deleted.", "success")
    return RedirectResponse(f"/projects/{quote(project.id, safe='')}/files", status_code=303)
