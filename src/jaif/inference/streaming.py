"""Server-sent-event relay helpers: frame events, read the usage, time the first token."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import orjson

from jaif.errors import UpstreamError
from jaif.inference.backends.base import BackendError
from jaif.inference.routing import ReplicaState
from jaif.inference.tokenizers import stream_text

_NULL_USAGE = (b'"usage":null', b'"usage": null')
# What a usage chunk jaif writes itself copies from the stream's last chunk (in this order).
_CHUNK_FIELDS = ("id", "object", "created", "model", "system_fingerprint")


class StreamMeter:
    """Watches a stream go by. The gateway always asks upstreams for include_usage; the final
    usage-only chunk (``choices: []``) is passed on only when the client asked for it too.

    ``usage`` is the upstream's (``usage_source`` "upstream") until the relay counts it itself for a
    stream that ended without it (StreamRelay.usage)."""

    def __init__(self, *, include_usage: bool, started: float) -> None:
        self.include_usage = include_usage
        self.started = started
        self.ttft_s: float | None = None
        self.usage: dict | None = None
        self.usage_source = "upstream"
        self.usage_sent = False  # a usage chunk went to the client
        self._last = b""  # the last payload: a usage chunk written by jaif copies its id, model, ...
        # Kept only until the upstream reports usage: without it, jaif counts the text itself.
        self._payloads: list[bytes] = []

    def feed(self, payload: bytes) -> bytes | None:
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        self._last = payload
        if b'"usage"' in payload and _NULL_USAGE[0] not in payload and _NULL_USAGE[1] not in payload:
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                data = None  # passed on as it came, and counted as a chunk without usage
            if isinstance(data, dict):
                usage = data.get("usage")
                if isinstance(usage, dict):
                    self.usage = usage
                    self._payloads = []
                if not data.get("choices"):
                    if not self.include_usage:
                        return None
                    self.usage_sent = isinstance(usage, dict)
                    return b"data: " + payload + b"\n\n"
        if self.usage is None:
            self._payloads.append(payload)
        return b"data: " + payload + b"\n\n"

    def text(self) -> str:
        """The text streamed so far (where the upstream reported no usage)."""
        return stream_text(self._payloads)

    def usage_event(self, usage: dict) -> bytes:
        """A usage-only chunk (``choices: []``) shaped like the stream's own chunks."""
        try:
            last = orjson.loads(self._last)
        except orjson.JSONDecodeError:
            last = None
        chunk = {k: last[k] for k in _CHUNK_FIELDS if k in last} if isinstance(last, dict) else {}
        chunk["choices"] = []
        chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    @staticmethod
    def error_event(message: str) -> bytes:
        return b"data: " + orjson.dumps(UpstreamError(message).to_openai()) + b"\n\n"


class StreamRelay:
    """A started upstream stream on its way to the client.

    ``events`` yields framed server-sent events ending with ``data: [DONE]``; a stream that breaks
    mid-way ends with an error event (after a usage chunk of what was delivered, where the client
    asked for include_usage). ``aclose`` must be called when the client is done or gone (also if
    ``events`` was never iterated): it closes the upstream stream and settles the request exactly
    once through ``finish``, also when closing fails. Where the upstream reported no usage, ``count``
    counts it from the text streamed so far: (usage, usage_source).
    """

    def __init__(
        self,
        replica: ReplicaState,
        upstream: AsyncIterator[bytes],
        first: bytes,
        meter: StreamMeter,
        finish: Callable[[str, int, StreamMeter], Awaitable[None]],
        count: Callable[[str], Awaitable[tuple[dict, str]]],
    ) -> None:
        self._replica = replica
        self._upstream = upstream
        self._first = first
        self._meter = meter
        self._finish = finish
        self._count = count
        self._outcome = ("cancelled", 499)  # unless the stream runs to its end: the client went away
        self._closed = False
        replica.outstanding += 1
        self.events = self._events()

    async def _events(self) -> AsyncGenerator[bytes, None]:
        meter = self._meter
        try:
            out = meter.feed(self._first)
            if out:
                yield out
            async for payload in self._upstream:
                out = meter.feed(payload)
                if out:
                    yield out
            self._outcome = ("ok", 200)
            yield b"data: [DONE]\n\n"
        except BackendError as exc:
            self._outcome = ("error", 502)
            if meter.include_usage and not meter.usage_sent:
                yield meter.usage_event(await self.usage())
            yield meter.error_event(f"The model server failed mid-stream: {exc.message}")
            yield b"data: [DONE]\n\n"

    async def usage(self) -> dict:
        """The usage so far: the upstream's last report, else counted from the text streamed."""
        meter = self._meter
        if meter.usage is None:
            meter.usage, meter.usage_source = await self._count(meter.text())
        return meter.usage

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._replica.outstanding -= 1
        try:
            await self.events.aclose()
            close = getattr(self._upstream, "aclose", None)
            if close is not None:
                await close()
        finally:
            try:
                await self.usage()
            finally:
                status, code = self._outcome
                await self._finish(status, code, self._meter)
