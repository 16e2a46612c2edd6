"""StreamMeter and StreamRelay on their own: a malformed usage chunk is tolerated, and a relay whose
upstream fails to close still settles its request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from jaif.inference.routing import ReplicaState
from jaif.inference.streaming import StreamMeter, StreamRelay
from tests.unit.inference.test_routing import FakeBackend

CHUNK = orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                      "choices": [{"index": 0, "delta": {"content": "hello there"}}]})  # fmt: skip


def test_a_malformed_usage_chunk_is_passed_on_and_counted_as_a_chunk_without_usage():
    meter = StreamMeter(include_usage=True, started=0.0)
    assert meter.feed(CHUNK) == b"data: " + CHUNK + b"\n\n"
    broken = b'{"choices": [], "usage": {"prompt_tokens": 3,'
    assert meter.feed(broken) == b"data: " + broken + b"\n\n"
    assert meter.usage is None and not meter.usage_sent
    assert meter.text() == "hello there"  # what jaif counts for the charge


async def test_a_relay_whose_upstream_fails_to_close_still_settles_once():
    settled = []

    async def upstream() -> AsyncIterator[bytes]:
        try:
            yield CHUNK
            yield CHUNK
        finally:
            raise RuntimeError("the connection could not be closed")

    async def finish(status: str, code: int, meter: StreamMeter) -> None:
        settled.append((status, code, meter.usage))

    async def count(text: str) -> tuple[dict, str]:
        return {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 0}, "estimate"

    replica = ReplicaState(FakeBackend("http://replica"))
    events = upstream()
    relay = StreamRelay(replica, events, await anext(events), StreamMeter(include_usage=False, started=0.0),
                        finish, count)  # fmt: skip
    assert await anext(relay.events) == b"data: " + CHUNK + b"\n\n"  # the client got one event, then left
    with pytest.raises(RuntimeError, match="could not be closed"):
        await relay.aclose()
    # Charged for what reached the upstream's reader before the client left (counted: no usage came).
    assert settled == [("cancelled", 499, {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 0})]
    assert replica.outstanding == 0
    await relay.aclose()  # once only
    assert len(settled) == 1
