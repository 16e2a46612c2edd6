"""Batches of a project: create, get, list, cancel (every query scoped to the caller's project), and the
runner's bookkeeping: claims with a lease, progress, the end of a batch (runner.py does the work)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from jaif.batches.input import ENDPOINTS, first_other_endpoint
from jaif.batches.input import check_input as check_input  # POST /v1/files checks a batch file with it
from jaif.batches.models import ACTIVE, Batch, BatchStatus
from jaif.batches.schemas import BatchCreate, BatchErrors, BatchList, BatchObject, RequestCounts
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest, NotFound
from jaif.files import service as files
from jaif.files.store import FileStore

WINDOWS = {"24h": timedelta(hours=24)}
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def _check(body: BatchCreate) -> None:
    if body.endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"Invalid value for 'endpoint': {body.endpoint!r}. jaif runs batches for {' and '.join(ENDPOINTS)}.",
            param="endpoint", code="invalid_value",
        )  # fmt: skip
    if body.completion_window not in WINDOWS:
        raise InvalidRequest(
            f"Invalid value for 'completion_window': {body.completion_window!r}. Supported: '24h'.",
            param="completion_window", code="invalid_value",
        )  # fmt: skip
    for key, value in (body.metadata or {}).items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata: keys have at most {MAX_METADATA_KEY} characters and values at most {MAX_METADATA_VALUE}.",
                param="metadata", code="invalid_value",
            )  # fmt: skip


def create_batch(
    *, session: Session, store: FileStore, project_id: str, api_key_id: str, body: BatchCreate, max_line_bytes: int
) -> Batch:
    """A batch of the requests in the project's file ``body.input_file_id``, all for ``body.endpoint``."""
    _check(body)
    try:
        source = files.get_file(session=session, project_id=project_id, file_id=body.input_file_id)
    except NotFound as exc:
        exc.param = "input_file_id"
        raise
    if source.purpose != "batch":
        raise InvalidRequest(
            f"The file {source.id} has the purpose '{source.purpose}'; a batch reads a file uploaded with "
            "purpose 'batch'.", param="input_file_id", code="invalid_value",
        )  # fmt: skip
    path = files.file_path(store=store, file=source)
    other = first_other_endpoint(path, body.endpoint, max_line_bytes=max_line_bytes)
    if other is not None:
        raise InvalidRequest(
            f"Line {other.number} of {source.id} is a request for {other.url}; this batch is for {body.endpoint}, "
            "and every line of its file must be too.", param="endpoint", code="mismatched_endpoint",
        )  # fmt: skip
    now = utcnow()
    batch = Batch(
        id=f"batch_{uuid.uuid4().hex}", project_id=project_id, api_key_id=api_key_id, endpoint=body.endpoint,
        completion_window=body.completion_window, input_file_id=source.id, status=BatchStatus.validating.value,
        meta=body.metadata, output_file_reserved=files.new_file_id(), error_file_reserved=files.new_file_id(),
        total=source.lines, created_at=now, expires_at=now + WINDOWS[body.completion_window],
    )  # fmt: skip
    session.add(batch)
    session.flush()
    return batch


def get_batch(*, session: Session, project_id: str, batch_id: str) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.project_id != project_id:
        raise NotFound(f"No such Batch object: {batch_id}", param="batch_id", code="batch_not_found")
    return batch


def get_batch_any(*, session: Session, batch_id: str) -> Batch:
    """A batch by id, whatever its project (for the platform's own work and the CLI; clients use get_batch)."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"No such Batch object: {batch_id}", param="batch_id", code="batch_not_found")
    return batch


def list_batches(*, session: Session, project_id: str, after: str | None = None, limit: int = 20) -> BatchList:
    """A page of the project's batches, newest first, after the batch ``after``."""
    query = select(Batch).where(Batch.project_id == project_id)
    if after is not None:
        cursor = get_batch(session=session, project_id=project_id, batch_id=after)
        query = query.where(or_(Batch.created_at < cursor.created_at,
                                (Batch.created_at == cursor.created_at) & (Batch.id < cursor.id)))  # fmt: skip
    rows = list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)))
    page = [batch_object(b) for b in rows[:limit]]
    return BatchList(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                     has_more=len(rows) > limit)  # fmt: skip


def cancel_batch(*, session: Session, project_id: str, batch_id: str) -> Batch:
    """Ask for a batch to stop: ``cancelling`` until the lines under way have finished, then ``cancelled``
    with the results so far in its output and error files."""
    batch = get_batch(session=session, project_id=project_id, batch_id=batch_id)
    if batch.status in (BatchStatus.validating, BatchStatus.in_progress):
        batch.status = BatchStatus.cancelling.value
        batch.cancelling_at = utcnow()
        session.flush()
    elif batch.status != BatchStatus.cancelling:
        raise Conflict(
            f"The batch {batch_id} is {batch.status}; it can no longer be cancelled.", code="batch_not_cancellable"
        )
    return batch


def input_in_use(*, session: Session, project_id: str, file_id: str) -> bool:
    """Whether a batch still to finish reads this file (it may not be deleted meanwhile)."""
    query = select(Batch.id).where(Batch.project_id == project_id, Batch.input_file_id == file_id,
                                   Batch.status.in_(ACTIVE))  # fmt: skip
    return session.scalar(query.limit(1)) is not None


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def batch_object(b: Batch) -> BatchObject:
    return BatchObject(
        id=b.id, endpoint=b.endpoint, errors=BatchErrors(data=b.errors) if b.errors else None,
        input_file_id=b.input_file_id, completion_window=b.completion_window, status=b.status,
        output_file_id=b.output_file_id, error_file_id=b.error_file_id, created_at=int(b.created_at.timestamp()),
        in_progress_at=_ts(b.in_progress_at), expires_at=_ts(b.expires_at), finalizing_at=_ts(b.finalizing_at),
        completed_at=_ts(b.completed_at), failed_at=_ts(b.failed_at), expired_at=_ts(b.expired_at),
        cancelling_at=_ts(b.cancelling_at), cancelled_at=_ts(b.cancelled_at),
        request_counts=RequestCounts(total=b.total, completed=b.completed, failed=b.failed), metadata=b.meta,
    )  # fmt: skip


# -- the runner's bookkeeping ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Work:
    """What a runner needs of a batch it claimed."""

    id: str
    project_id: str
    api_key_id: str | None
    endpoint: str
    status: str
    input_path: Path | None  # None: the input file is gone
    expires_at: datetime


def claim(*, session: Session, holder: str, lease_s: float, limit: int) -> list[str]:
    """Take up to ``limit`` batches with work to do that no server holds (or whose holder's lease ran out),
    oldest first. A conditional update per batch: of servers racing for one, one wins."""
    now = utcnow()
    free = or_(Batch.runner.is_(None), Batch.lease_until < now)
    candidates = list(session.scalars(
        select(Batch.id).where(Batch.status.in_(ACTIVE), free).order_by(Batch.created_at).limit(limit)
    ))  # fmt: skip
    taken = []
    for batch_id in candidates:
        result = session.execute(
            update(Batch).where(Batch.id == batch_id, Batch.status.in_(ACTIVE), free)
            .values(runner=holder, lease_until=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if result.rowcount == 1:  # type: ignore[attr-defined]
            taken.append(batch_id)
    return taken


def work_of(*, session: Session, store: FileStore, batch_id: str) -> Work:
    b = session.get(Batch, batch_id)
    assert b is not None
    source = files.find_file(session=session, file_id=b.input_file_id)
    path = files.file_path(store=store, file=source) if source is not None else None
    return Work(b.id, b.project_id, b.api_key_id, b.endpoint, b.status, path if path and path.exists() else None,
                b.expires_at)  # fmt: skip


def renew(
    *, session: Session, holder: str, batch_id: str, lease_s: float, completed: int, failed: int
) -> str | None:
    """Extend this server's claim and save the batch's progress; returns its status (a client may have
    cancelled it), or None if the claim was lost (another server took it over)."""
    result = session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.runner == holder)
        .values(lease_until=utcnow() + timedelta(seconds=lease_s), completed=completed, failed=failed)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.scalar(select(Batch.status).where(Batch.id == batch_id))


def release(*, session: Session, holder: str, batch_id: str) -> None:
    """Give a claim up (a server that stops): another server, or this one restarted, takes it at once."""
    session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.runner == holder).values(runner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )  # fmt: skip


def _held(session: Session, holder: str, batch_id: str) -> Batch | None:
    b = session.get(Batch, batch_id, with_for_update=True, populate_existing=True)
    return b if b is not None and b.runner == holder else None


def start(*, session: Session, holder: str, batch_id: str) -> bool:
    """validating -> in_progress. False if the claim was lost."""
    b = _held(session, holder, batch_id)
    if b is None:
        return False
    if b.status == BatchStatus.validating:
        b.status = BatchStatus.in_progress.value
        b.in_progress_at = utcnow()
    return True


def fail(*, session: Session, holder: str, batch_id: str, code: str, message: str) -> None:
    b = _held(session, holder, batch_id)
    if b is not None:
        b.status = BatchStatus.failed.value
        b.failed_at = utcnow()
        b.errors = [{"code": code, "message": message, "param": None, "line": None}]
        b.runner, b.lease_until = None, None


def finalizing(*, session: Session, holder: str, batch_id: str) -> bool:
    b = _held(session, holder, batch_id)
    if b is None:
        return False
    if b.status == BatchStatus.in_progress:
        b.status = BatchStatus.finalizing.value
        b.finalizing_at = utcnow()
    return True


def finish(
    *,
    session: Session,
    holder: str,
    batch_id: str,
    store: FileStore,
    output: Path,
    errors: Path,
    completed: int,
    failed: int,
    status: BatchStatus,
) -> bool:
    """Make the results files of the batch (output, errors: those with lines) and end it with ``status``
    (completed, cancelled or expired). Can be repeated after a crash: the files' ids were reserved."""
    b = _held(session, holder, batch_id)
    if b is None:
        return False
    for path, file_id, kind in ((output, b.output_file_reserved, "output"), (errors, b.error_file_reserved, "error")):
        kept = store.path(b.project_id, file_id)
        has_lines = (path.exists() and path.stat().st_size > 0) or kept.exists()
        if has_lines and files.find_file(session=session, file_id=file_id) is None:
            files.add_file(session=session, store=store, source=path, project_id=b.project_id,
                           purpose=files.OUTPUT_PURPOSE, filename=f"{b.id}_{kind}.jsonl", file_id=file_id)  # fmt: skip
        if has_lines:
            setattr(b, f"{kind}_file_id", file_id)
    now = utcnow()
    b.completed, b.failed, b.status = completed, failed, status.value
    setattr(b, f"{status.value}_at", now)
    b.runner, b.lease_until = None, None
    return True
