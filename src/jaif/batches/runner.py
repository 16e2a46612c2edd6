"""The batch runner: runs batches in the server's background, through the gateway, below interactive traffic.

Every server runs one (runtime.py calls ``tick`` every ``batches.poll_s``); servers sharing a database
share the batches: a server claims a batch with a lease in its row (service.claim, a conditional
update, so one server wins) and renews it on each tick; a batch whose server stopped renewing for
``batches.lease_s`` is taken over by another, or by the same one restarted. A server that stops
gives its claims back at once (``stop``), after letting the lines under way finish (``drain_s``).

Each line is one call of the gateway (``Gateway.handle``) with the principal of the key that created
the batch, as if that key had sent it: the same model rights, rate limits, allowance and metering, to
the token. The batch's priority below interactive requests is a bound on concurrency: at most
``max_in_flight_per_batch`` lines of a batch and ``max_in_flight`` lines of all batches of this server
are under way at once, while interactive requests are not bounded by the runner (docs/batches.md).

A line is marked started (journal.py, fsync'd) before it is sent, and its result is durable before it
counts as done; a resumed batch skips the lines done, and does not send again a line started but not
done (it may have run: it ends in the error file as ``interrupted``), so no line runs twice.

A line refused for the project's allowance (QuotaExceeded) stops the batch's calls: that line and every
line left end in the error file with ``insufficient_quota``; those under way finish and are kept.
Rate limits and a model without a healthy replica are waited out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from jaif.access import service as access
from jaif.access.schemas import KeyPrincipal
from jaif.batches import service
from jaif.batches.input import ENDPOINTS, Line, read_lines
from jaif.batches.journal import Journal, Kind
from jaif.batches.models import BatchStatus
from jaif.config import BatchSettings
from jaif.db.base import utcnow
from jaif.db.engine import transaction
from jaif.dependencies import outage_of
from jaif.errors import JaifError, QuotaExceeded, RateLimited, Unauthorized, Unavailable
from jaif.files.store import FileStore

log = logging.getLogger(__name__)

READ_AHEAD = 256  # input lines read per trip to a thread
INTERRUPTED = (
    "The server stopped while this line was under way, and it was not sent again: it may have run (and been "
    "charged) already. Send it again in a new batch if its result is needed."
)


class LineGateway(Protocol):
    """What the runner needs of the gateway (inference/gateway.py's Gateway): parse a line's body as a request
    of its endpoint, and handle it for a principal, as the endpoints do for a client's request."""

    def parse(self, model: type[BaseModel], raw: bytes) -> Any: ...

    async def handle(self, principal: KeyPrincipal, request: Any, raw: bytes | None = None) -> Any: ...


@dataclass
class _Job:
    batch_id: str
    task: asyncio.Task | None = None
    journal: Journal | None = None
    principal: KeyPrincipal | None = None
    refusal: JaifError | None = None  # the key cannot be used: every line fails with it
    quota_out: str | None = None  # the allowance ran out: the message for the lines left
    cancelled: bool = False
    stopping: bool = False
    ending: bool = False  # its end is being written (which gives its claim up)
    key_id: str | None = None  # the key that created it: checked again at every lease renewal (revoked: stop)
    expires_at: datetime | None = None
    expired: bool = False  # a line waited (rate limit, no replica) past the batch's window
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Results waiting to be written (the group commit of _record), and how many were queued and written.
    pending: list[tuple[dict, Kind]] = field(default_factory=list)
    queued: int = 0
    written: int = 0


class BatchRunner:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        gateway: LineGateway,
        store: FileStore,
        settings: BatchSettings,
        max_line_bytes: int,
    ) -> None:
        self._factory = session_factory
        self.gateway = gateway
        self.store = store
        self.settings = settings
        self.max_line_bytes = max_line_bytes
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._jobs: dict[str, _Job] = {}
        self._stopping = False

    def _db(self, work, /, **kwargs):
        with transaction(self._factory) as session:
            return work(session=session, **kwargs)

    async def tick(self) -> None:
        """Renew the claims of the batches running here (and see which were cancelled), then claim more."""
        await self._renew()
        room = self.settings.max_running - len(self._jobs)
        if room <= 0 or self._stopping:
            return
        claimed = await asyncio.to_thread(self._db, service.claim, holder=self.holder, lease_s=self.settings.lease_s,
                                          limit=room)  # fmt: skip
        for batch_id in claimed:
            job = self._jobs[batch_id] = _Job(batch_id)
            job.task = asyncio.create_task(self._run(job), name=f"batch {batch_id}")

    async def _renew(self) -> None:
        jobs = list(self._jobs.values())
        if not jobs:
            return

        def renew_all(session: Session) -> list[str | None]:
            for job in jobs:  # a key revoked (or expired) since the batch started: its lines stop being run
                if job.key_id is not None and job.refusal is None:
                    try:
                        access.principal_of_key(session=session, key_id=job.key_id)
                    except Unauthorized as exc:
                        job.refusal = exc
            return [
                service.renew(session=session, holder=self.holder, batch_id=job.batch_id, lease_s=self.settings.lease_s,
                              completed=job.journal.completed if job.journal else 0,
                              failed=job.journal.failed if job.journal else 0)
                for job in jobs
            ]  # fmt: skip

        statuses = await asyncio.to_thread(self._db, renew_all)
        for job, status in zip(jobs, statuses, strict=True):
            if status is None and job.ending:
                continue  # it ended meanwhile (its claim given up with it)
            if status is None:  # another server took it over: stop at once, write nothing more
                log.warning("batch %s: this server lost its claim; it stops here", job.batch_id)
                job.stopping = True
                if job.task is not None:
                    job.task.cancel()
            elif status == BatchStatus.cancelling:
                job.cancelled = True

    async def stop(self) -> None:
        """Stop taking lines; give the lines under way ``drain_s`` to finish, then give the claims back."""
        self._stopping = True
        jobs = list(self._jobs.values())
        for job in jobs:
            job.stopping = True
        tasks = [job.task for job in jobs if job.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        def release_all(session: Session) -> None:
            for job in jobs:
                service.release(session=session, holder=self.holder, batch_id=job.batch_id)

        if jobs:
            await asyncio.to_thread(self._db, release_all)

    # -- one batch ---------------------------------------------------------------------------------------
    async def _run(self, job: _Job) -> None:
        try:
            await self._advance(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outage_of(exc) is not None:  # the database is away: the claim runs out, a server takes it again
                log.warning("batch %s paused: %s", job.batch_id, exc)
            else:
                log.exception("batch %s failed", job.batch_id)
                job.ending = True
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        self._db, service.fail, holder=self.holder, batch_id=job.batch_id, code="internal_error",
                        message="The batch failed on the server.",
                    )  # fmt: skip
        finally:
            if job.journal is not None:
                job.journal.close()
            self._jobs.pop(job.batch_id, None)

    async def _advance(self, job: _Job) -> None:
        work = await asyncio.to_thread(self._db, service.work_of, store=self.store, batch_id=job.batch_id)
        if work.input_path is None and work.status in (BatchStatus.validating, BatchStatus.in_progress):
            job.ending = True
            await asyncio.to_thread(
                self._db, service.fail, holder=self.holder, batch_id=job.batch_id, code="input_file_missing",
                message="The batch's input file was deleted.",
            )  # fmt: skip
            return
        if not await asyncio.to_thread(self._db, service.start, holder=self.holder, batch_id=job.batch_id):
            return
        job.journal = await asyncio.to_thread(Journal, self.store.work_dir(job.batch_id))
        final: BatchStatus | None
        if work.status in (BatchStatus.validating, BatchStatus.in_progress):
            job.key_id, job.expires_at = work.api_key_id, work.expires_at
            await self._authorise(job, work.api_key_id)
            assert work.input_path is not None
            final = await self._lines(job, work.input_path, ENDPOINTS[work.endpoint], work.expires_at)
        else:
            final = BatchStatus.cancelled if work.status == BatchStatus.cancelling else BatchStatus.completed
        if final is None:
            return  # stopping: the claim is given back; the next server resumes it
        if final == BatchStatus.completed:
            await asyncio.to_thread(self._db, service.finalizing, holder=self.holder, batch_id=job.batch_id)
        journal = job.journal
        journal.close()
        job.ending = True
        await asyncio.to_thread(
            self._db, service.finish, holder=self.holder, batch_id=job.batch_id, store=self.store,
            output=journal.output, errors=journal.errors, completed=journal.completed, failed=journal.failed,
            status=final,
        )  # fmt: skip

    async def _authorise(self, job: _Job, key_id: str | None) -> None:
        try:
            if key_id is None:
                raise Unauthorized("The API key that created this batch was deleted.", code="invalid_api_key")
            job.principal = await asyncio.to_thread(self._db, access.principal_of_key, key_id=key_id)
        except Unauthorized as exc:
            job.refusal = exc

    async def _lines(self, job: _Job, path: Path, model: type[BaseModel], expires_at) -> BatchStatus | None:
        assert job.journal is not None
        per_batch = asyncio.Semaphore(self.settings.max_in_flight_per_batch)
        running: set[asyncio.Task] = set()
        expired = False
        try:
            async for line in self._read(path):
                if line.custom_id in job.journal.done:
                    continue
                if line.custom_id in job.journal.interrupted:  # sent before a restart: may have run, not again
                    await self._not_run(job, line, "interrupted", INTERRUPTED)
                    continue
                if job.stopping or job.cancelled:
                    break
                if not expired and utcnow() >= expires_at:
                    expired = True
                if expired:
                    await self._not_run(job, line, "batch_expired", "This line was not run before the batch expired.")
                    continue
                await per_batch.acquire()
                await self._in_flight.acquire()
                if job.stopping or job.cancelled:
                    per_batch.release()
                    self._in_flight.release()
                    break
                task = asyncio.create_task(self._one(job, line, model))
                running.add(task)
                task.add_done_callback(functools.partial(self._done, running, per_batch))
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
        if job.cancelled:
            return BatchStatus.cancelled
        if job.stopping:
            return None
        return BatchStatus.expired if expired or job.expired else BatchStatus.completed

    def _done(self, running: set[asyncio.Task], per_batch: asyncio.Semaphore, task: asyncio.Task) -> None:
        running.discard(task)
        per_batch.release()
        self._in_flight.release()

    async def _read(self, path: Path) -> AsyncIterator[Line]:
        lines = read_lines(path, max_line_bytes=self.max_line_bytes)
        while chunk := await asyncio.to_thread(_take, lines, READ_AHEAD):
            for line in chunk:
                yield line

    async def _one(self, job: _Job, line: Line, model: type[BaseModel]) -> None:
        request_id = f"batch_req_{uuid.uuid4().hex}"
        journal = job.journal
        assert journal is not None
        while True:
            if job.refusal is not None:
                await self._not_run(job, line, job.refusal.code or "invalid_api_key", job.refusal.message)
                return
            if job.quota_out is not None:
                await self._not_run(job, line, "insufficient_quota", job.quota_out)
                return
            assert job.principal is not None
            if line.custom_id not in journal.started:
                await self._journal(job, {"custom_id": line.custom_id}, "started")
            try:
                request = self.gateway.parse(model, line.body)
                result = await self.gateway.handle(job.principal, request, line.body)
            except QuotaExceeded as exc:
                job.quota_out = job.quota_out or exc.message
                continue
            except (RateLimited, Unavailable) as exc:
                if job.stopping or job.cancelled:
                    return  # not done: a resumed batch runs it, a cancelled one does not
                if job.expires_at is not None and utcnow() >= job.expires_at:  # waited out its whole window
                    job.expired = True
                    await self._not_run(job, line, "batch_expired", "This line was not run before the batch expired.")
                    return
                await asyncio.sleep(exc.retry_after or self.settings.retry_s)
                continue
            except JaifError as exc:
                response = {"status_code": exc.status, "request_id": request_id, "body": exc.to_openai()}
                await self._record(job, {"id": request_id, "custom_id": line.custom_id, "response": response,
                                         "error": None}, ok=False)  # fmt: skip
                return
            response = {"status_code": 200, "request_id": request_id, "body": result}
            await self._record(job, {"id": request_id, "custom_id": line.custom_id, "response": response,
                                     "error": None}, ok=True)  # fmt: skip
            return

    async def _not_run(self, job: _Job, line: Line, code: str, message: str) -> None:
        record = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line.custom_id, "response": None,
                  "error": {"code": code, "message": message}}  # fmt: skip
        await self._record(job, record, ok=False)

    async def _record(self, job: _Job, record: dict, *, ok: bool) -> None:
        await self._journal(job, record, "output" if ok else "errors")

    async def _journal(self, job: _Job, record: dict, kind: Kind) -> None:
        """Make a journal entry durable before returning. Entries that arrive while others are being written
        wait, and the first of them writes them all at once (one fsync per file: journal.write_many)."""
        journal = job.journal
        assert journal is not None
        job.pending.append((record, kind))
        job.queued += 1
        mine = job.queued
        async with job.lock:
            if job.written >= mine:
                return  # written with an earlier group
            group, job.pending = job.pending, []
            job.written += len(group)
            # Shielded: once the answers are here, a cancellation (shutdown) must not lose them half-written.
            await asyncio.shield(asyncio.to_thread(journal.write_many, group))


def _take(lines: Iterator[Line], n: int) -> list[Line]:
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= n:
            break
    return chunk
