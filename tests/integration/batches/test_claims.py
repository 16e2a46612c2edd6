"""service.claim / renew / release: of the servers sharing a database, one runs a batch at a time; a claim
given back or run out is taken over, and the server that lost it learns so at its next renewal."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from jaif.access.models import ApiKey
from jaif.batches import service
from jaif.batches.models import Batch
from jaif.batches.schemas import BatchCreate
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest
from jaif.files import service as files
from jaif.files.store import FileStore

LINE = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip


@pytest.fixture
def batch(session, world, tmp_path) -> Batch:
    project = world.project()
    key = ApiKey(project_id=project.id, key_hash="h" * 64, prefix="jaif-test1234")
    session.add(key)
    store = FileStore(tmp_path / "files")
    source = store.temporary()
    source.write_bytes(orjson.dumps(LINE) + b"\n")
    row = files.add_file(session=session, store=store, source=source, project_id=project.id, purpose="batch",
                         filename="in.jsonl", lines=1)  # fmt: skip
    body = BatchCreate(input_file_id=row.id, endpoint="/v1/chat/completions", completion_window="24h")
    return service.create_batch(session=session, store=store, project_id=project.id, api_key_id=key.id, body=body,
                                max_line_bytes=1 << 20)  # fmt: skip


def test_one_server_claims_a_batch_and_another_takes_it_over_when_given_back(session, batch):
    assert service.claim(session=session, holder="A", lease_s=30, limit=10) == [batch.id]
    assert service.claim(session=session, holder="B", lease_s=30, limit=10) == []
    status = service.renew(session=session, holder="A", batch_id=batch.id, lease_s=30, completed=1, failed=0)
    assert status == "validating"
    service.release(session=session, holder="A", batch_id=batch.id)
    assert service.claim(session=session, holder="B", lease_s=30, limit=10) == [batch.id]
    # A lost it: its renewal says so (and saves nothing).
    assert service.renew(session=session, holder="A", batch_id=batch.id, lease_s=30, completed=5, failed=0) is None
    session.refresh(batch)
    assert batch.completed == 1 and batch.runner == "B"


def test_a_claim_that_ran_out_is_taken_over(session, batch):
    assert service.claim(session=session, holder="A", lease_s=30, limit=10) == [batch.id]
    session.refresh(batch)
    batch.lease_until = utcnow() - timedelta(seconds=1)  # A stopped renewing (it died)
    session.flush()
    assert service.claim(session=session, holder="B", lease_s=30, limit=10) == [batch.id]
    assert service.start(session=session, holder="A", batch_id=batch.id) is False
    assert service.start(session=session, holder="B", batch_id=batch.id) is True


def test_cancel_and_the_input_in_use(session, batch):
    assert service.input_in_use(session=session, project_id=batch.project_id, file_id=batch.input_file_id)
    assert service.cancel_batch(session=session, project_id=batch.project_id, batch_id=batch.id).status == "cancelling"
    batch.status = "completed"
    session.flush()
    with pytest.raises(Conflict):
        service.cancel_batch(session=session, project_id=batch.project_id, batch_id=batch.id)
    assert not service.input_in_use(session=session, project_id=batch.project_id, file_id=batch.input_file_id)


def test_a_batch_reads_only_a_batch_file(session, batch, tmp_path):
    store = FileStore(tmp_path / "files")
    source = store.temporary()
    source.write_bytes(b"x\n")
    other = files.add_file(session=session, store=store, source=source, project_id=batch.project_id,
                           purpose="batch_output", filename="out.jsonl")  # fmt: skip
    body = BatchCreate(input_file_id=other.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(InvalidRequest) as refused:
        service.create_batch(session=session, store=store, project_id=batch.project_id, api_key_id=None,  # type: ignore[arg-type]
                             body=body, max_line_bytes=1 << 20)  # fmt: skip
    assert refused.value.param == "input_file_id"


def test_batches_come_in_pages_newest_first(session, batch, tmp_path):
    store = FileStore(tmp_path / "files")
    body = BatchCreate(input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h")
    more = [service.create_batch(session=session, store=store, project_id=batch.project_id, api_key_id=batch.api_key_id,
                                 body=body, max_line_bytes=1 << 20) for _ in range(2)]  # type: ignore[arg-type]  # fmt: skip
    newest_first = [b.id for b in sorted([batch, *more], key=lambda b: (b.created_at, b.id), reverse=True)]
    first = service.list_batches(session=session, project_id=batch.project_id, limit=2)
    assert [b.id for b in first.data] == newest_first[:2] and first.has_more and first.last_id == newest_first[1]
    rest = service.list_batches(session=session, project_id=batch.project_id, after=first.last_id, limit=2)
    assert [b.id for b in rest.data] == newest_first[2:] and not rest.has_more
    assert service.list_batches(session=session, project_id="nobody").data == []
