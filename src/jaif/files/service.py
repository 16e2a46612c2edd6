"""Files of a project: add, list, get, delete, and a copy of one for a job's directory. Every query is scoped
to the caller's project, so a file of another project is as absent as one that never was (404).

Purposes: ``batch`` (a Batch API input file, checked line by line), ``user_data`` (any file: a job's input,
OpenAI's purpose for files of any use) and ``batch_output`` (a batch's results, written by jaif)."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from jaif.db.base import utcnow
from jaif.errors import InvalidRequest, NotFound
from jaif.files.models import StoredFile
from jaif.files.schemas import FileList, FileObject
from jaif.files.store import FileStore

PURPOSES = ("batch", "user_data")  # what may be uploaded
INPUT_PURPOSE = "user_data"  # a job's input (any file)
OUTPUT_PURPOSE = "batch_output"  # a batch's output and error files


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


def check_purpose(purpose: str | None) -> str:
    if not purpose:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in PURPOSES:
        raise InvalidRequest(
            f"Invalid value for 'purpose': {purpose!r}. jaif stores files for the Batch API ('batch') and for "
            "jobs ('user_data'): the purpose must be one of them.",
            param="purpose",
            code="invalid_value",
        )
    return purpose


def check_room(*, session: Session, project_id: str, max_files: int) -> None:
    """Refuse an upload, before it is read, once the project keeps ``max_files`` files."""
    count = count_files(session=session, project_id=project_id)
    if count >= max_files:
        raise InvalidRequest(
            f"This project keeps {count} files, the limit is {max_files}: delete some (on the project's Files page, "
            "or DELETE /v1/files/{{id}}) before uploading another.",
            param="file",
            code="too_many_files",
        )


def add_file(
    *,
    session: Session,
    store: FileStore,
    source: Path,
    project_id: str,
    purpose: str,
    filename: str,
    lines: int = 0,
    file_id: str | None = None,
) -> StoredFile:
    """Move the written file ``source`` into the store and record it (in the caller's transaction). Repeated
    after a crash between the two, the file already moved is recorded."""
    file_id = file_id or new_file_id()
    if source.exists() or not store.path(project_id, file_id).exists():  # else: moved already (a repeat)
        store.keep(source, project_id, file_id)
    size = store.path(project_id, file_id).stat().st_size
    row = StoredFile(id=file_id, project_id=project_id, purpose=purpose, filename=filename[:255], bytes=size,
                     lines=lines, created_at=utcnow())  # fmt: skip
    session.add(row)
    session.flush()
    return row


def get_file(*, session: Session, project_id: str, file_id: str) -> StoredFile:
    row = session.get(StoredFile, file_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No such File object: {file_id}", param="file_id", code="file_not_found")
    return row


def count_files(*, session: Session, project_id: str) -> int:
    return session.scalar(select(func.count()).select_from(StoredFile).where(StoredFile.project_id == project_id)) or 0


def job_input(*, session: Session, files_dir: Path, project_id: str, file_id: str) -> tuple[StoredFile, Path]:
    """A file of the project that a job is given (compute copies it into the job's directory): its row and where
    its bytes are. NotFound for another project's file, as for one that never was."""
    row = get_file(session=session, project_id=project_id, file_id=file_id)
    return row, FileStore(files_dir).path(project_id, file_id)


def find_file(*, session: Session, file_id: str) -> StoredFile | None:
    """A file by id, whatever its project (for the platform's own work; clients use get_file)."""
    return session.get(StoredFile, file_id)


def file_path(*, store: FileStore, file: StoredFile) -> Path:
    return store.path(file.project_id, file.id)


def list_files(
    *,
    session: Session,
    project_id: str,
    purpose: str | None = None,
    after: str | None = None,
    limit: int = 10_000,
    order: str = "desc",
) -> FileList:
    """A page of the project's files, newest first (``order="asc"``: oldest first), after the file ``after``."""
    query = select(StoredFile).where(StoredFile.project_id == project_id)
    if purpose is not None:
        query = query.where(StoredFile.purpose == purpose)
    newest_first = order == "desc"
    if after is not None:
        cursor = get_file(session=session, project_id=project_id, file_id=after)
        query = query.where(_beyond(cursor.created_at, cursor.id, newest_first=newest_first))
    if newest_first:
        query = query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
    else:
        query = query.order_by(StoredFile.created_at, StoredFile.id)
    rows = list(session.scalars(query.limit(limit + 1)))
    page = [file_object(row) for row in rows[:limit]]
    return FileList(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                    has_more=len(rows) > limit)  # fmt: skip


def _beyond(created_at: datetime, file_id: str, *, newest_first: bool):
    if newest_first:
        return or_(StoredFile.created_at < created_at,
                   (StoredFile.created_at == created_at) & (StoredFile.id < file_id))  # fmt: skip
    return or_(StoredFile.created_at > created_at, (StoredFile.created_at == created_at) & (StoredFile.id > file_id))


def delete_file(*, session: Session, store: FileStore, project_id: str, file_id: str) -> None:
    row = get_file(session=session, project_id=project_id, file_id=file_id)
    session.delete(row)
    session.flush()
    store.remove(project_id, file_id)


def file_object(row: StoredFile) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=int(row.created_at.timestamp()), filename=row.filename,
                      purpose=row.purpose)  # fmt: skip
