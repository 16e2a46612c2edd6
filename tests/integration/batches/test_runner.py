"""The runner on a real database and file store, with a fake of our own LineGateway protocol in place of
the gateway: bounded concurrency, rate limits waited out, the allowance running out, expiry, cancelling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import timedelta

import orjson
import pytest

from jaif.access import service as access
from jaif.access.models import ApiKey
from jaif.batches import service
from jaif.batches.runner import BatchRunner
from jaif.batches.schemas import BatchCreate
from jaif.config import BatchSettings
from jaif.db.base import utcnow
from jaif.db.engine import make_session_factory, transaction
from jaif.errors import QuotaExceeded, RateLimited, Unavailable
from jaif.files import service as files
from jaif.files.store import FileStore


class FakeGateway:
    """Answers each line after a moment; a line whose prompt is "quota" is refused for the allowance, and
    "busy" is rate limited the first time it is sent."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()
        self.peak_total = 0
        self.peak_per_key: Counter[str] = Counter()
        self.sent: list[str] = []

    def parse(self, model, raw: bytes):
        return model.model_validate_json(raw)

    async def handle(self, principal, request, raw=None):
        prompt = request.messages[0].content
        self.sent.append(prompt)
        self.running[principal.key_id] += 1
        self.peak_total = max(self.peak_total, sum(self.running.values()))
        self.peak_per_key[principal.key_id] = max(self.peak_per_key[principal.key_id], self.running[principal.key_id])
        try:
            await asyncio.sleep(0.01)
            if prompt == "quota":
                raise QuotaExceeded("The project's token allowance is used up.")
            if prompt == "busy" and self.sent.count("busy") == 1:
                raise RateLimited("Slow down.", retry_after=0.01)
            return {"object": "chat.completion", "choices": [{"message": {"content": prompt}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip
        finally:
            self.running[principal.key_id] -= 1


@pytest.fixture
def world(engine, tmp_path):
    factory = make_session_factory(engine)
    store = FileStore(tmp_path / "files")

    def batch(prompts: list[str]) -> str:
        name = f"p-{uuid.uuid4().hex[:8]}"
        with transaction(factory) as session:
            access.create_organisation(session=session, name=f"Org {name}", sector="academia", country="DE")
            project = access.create_project(session=session, name=name, organisation=f"Org {name}")
            key, _secret = access.create_api_key(session=session, project_name=name)
            source = store.temporary()
            source.write_bytes(b"".join(orjson.dumps({
                "custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": p}]}}) + b"\n"
                for i, p in enumerate(prompts)))  # fmt: skip
            row = files.add_file(session=session, store=store, source=source, project_id=project.id, purpose="batch",
                                 filename="in.jsonl", lines=len(prompts))  # fmt: skip
            body = BatchCreate(input_file_id=row.id, endpoint="/v1/chat/completions", completion_window="24h")
            created = service.create_batch(session=session, store=store, project_id=project.id, api_key_id=key.id,
                                           body=body, max_line_bytes=1 << 20)  # fmt: skip
            return created.id

    return factory, store, batch


def runner_of(factory, store, gateway, **settings) -> BatchRunner:
    conf = BatchSettings(poll_s=0.05, **settings)
    return BatchRunner(session_factory=factory, gateway=gateway, store=store, settings=conf, max_line_bytes=1 << 20)


async def run_until_ended(runner: BatchRunner, factory, batch_ids: list[str], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    try:
        while True:
            await runner.tick()
            with factory() as session:
                found = [service.get_batch_any(session=session, batch_id=b) for b in batch_ids]
            if all(b.status in ("completed", "failed", "expired", "cancelled") for b in found):
                return found
            assert time.monotonic() < deadline, [(b.status, b.completed, b.failed) for b in found]
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()


def lines_of(store: FileStore, factory, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    with factory() as session:
        row = files.find_file(session=session, file_id=file_id)
        assert row is not None
        return [orjson.loads(x) for x in files.file_path(store=store, file=row).read_bytes().splitlines()]


async def test_lines_under_way_are_bounded_per_batch_and_in_total(world):
    factory, store, batch = world
    gateway = FakeGateway()
    ids = [batch([f"line {i}" for i in range(12)]) for _ in range(2)]
    runner = runner_of(factory, store, gateway, max_in_flight=3, max_in_flight_per_batch=2)
    found = await run_until_ended(runner, factory, ids)
    assert [(b.status, b.completed, b.failed) for b in found] == [("completed", 12, 0)] * 2
    assert gateway.peak_total == 3 and max(gateway.peak_per_key.values()) == 2
    assert len(gateway.sent) == 24  # each line once


async def test_a_rate_limit_is_waited_out_and_the_allowance_running_out_ends_the_calls(world):
    factory, store, batch = world
    gateway = FakeGateway()
    batch_id = batch(["one", "busy", "two", "quota", "three", "four"])
    runner = runner_of(factory, store, gateway, max_in_flight_per_batch=1)
    [found] = await run_until_ended(runner, factory, [batch_id])
    assert (found.status, found.completed, found.failed) == ("completed", 3, 3)
    output = lines_of(store, factory, found.output_file_id)
    assert [r["custom_id"] for r in output] == ["c0", "c1", "c2"]  # "busy" waited, then answered
    errors = lines_of(store, factory, found.error_file_id)
    assert [(r["custom_id"], r["response"], r["error"]["code"]) for r in errors] == [
        ("c3", None, "insufficient_quota"), ("c4", None, "insufficient_quota"), ("c5", None, "insufficient_quota")]
    assert gateway.sent == ["one", "busy", "busy", "two", "quota"]  # nothing sent once the allowance ran out


async def test_an_expired_batch_runs_nothing_more(world):
    factory, store, batch = world
    batch_id = batch(["a", "b"])
    with transaction(factory) as session:
        service.get_batch_any(session=session, batch_id=batch_id).expires_at = utcnow() - timedelta(seconds=1)
    gateway = FakeGateway()
    [found] = await run_until_ended(runner_of(factory, store, gateway), factory, [batch_id])
    assert (found.status, found.failed, found.output_file_id) == ("expired", 2, None) and found.expired_at
    assert {r["error"]["code"] for r in lines_of(store, factory, found.error_file_id)} == {"batch_expired"}
    assert gateway.sent == []


async def test_a_batch_cancelled_before_it_ran(world):
    factory, store, batch = world
    batch_id = batch(["a", "b"])
    with transaction(factory) as session:
        b = service.get_batch_any(session=session, batch_id=batch_id)
        service.cancel_batch(session=session, project_id=b.project_id, batch_id=batch_id)
    gateway = FakeGateway()
    [found] = await run_until_ended(runner_of(factory, store, gateway), factory, [batch_id])
    assert (found.status, found.completed, found.output_file_id) == ("cancelled", 0, None) and found.cancelled_at
    assert gateway.sent == []


class SlowGateway(FakeGateway):
    """Each line takes 50 ms; "down" is never served (no replica)."""

    async def handle(self, principal, request, raw=None):
        prompt = request.messages[0].content
        if prompt == "down":
            self.sent.append(prompt)
            raise Unavailable("No healthy replica.", retry_after=0.01)
        await asyncio.sleep(0.05)
        return await super().handle(principal, request, raw)


async def test_a_line_waiting_for_a_replica_past_the_window_expires_the_batch(world):
    factory, store, batch = world
    batch_id = batch(["fine", "down"])
    with transaction(factory) as session:
        service.get_batch_any(session=session, batch_id=batch_id).expires_at = utcnow() + timedelta(seconds=1)
    [found] = await run_until_ended(runner_of(factory, store, SlowGateway()), factory, [batch_id], timeout=10)
    assert (found.status, found.completed, found.failed) == ("expired", 1, 1)
    assert [r["error"]["code"] for r in lines_of(store, factory, found.error_file_id)] == ["batch_expired"]


async def test_a_key_revoked_while_its_batch_runs_stops_its_lines(world):
    factory, store, batch = world
    batch_id = batch([f"line {i}" for i in range(40)])
    gateway = SlowGateway()
    runner = runner_of(factory, store, gateway, max_in_flight_per_batch=1)

    async def revoke_soon() -> None:
        while len(gateway.sent) < 3:
            await asyncio.sleep(0.01)
        with transaction(factory) as session:
            key_id = service.get_batch_any(session=session, batch_id=batch_id).api_key_id
            key = session.get(ApiKey, key_id)
            access.revoke_api_key(session=session, prefix=key.prefix)

    revoking = asyncio.create_task(revoke_soon())
    [found] = await run_until_ended(runner, factory, [batch_id])
    await revoking
    assert found.completed < 40 and found.completed + found.failed == 40, (found.completed, found.failed)
    codes = {r["error"]["code"] for r in lines_of(store, factory, found.error_file_id)}
    assert codes == {"revoked_api_key"}, codes
    assert len(gateway.sent) < 40  # the lines after the revocation were not sent
