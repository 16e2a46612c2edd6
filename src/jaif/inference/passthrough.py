"""POST /v1/responses passed through to an upstream that speaks the Responses API itself (a model added
with ``--responses-api native``): the client's request as it came (the model's name aside), the
upstream's answer or typed events as they come, metered from the usage the upstream reports (its
``input_tokens`` and ``output_tokens``; counted from the text where it reports none).

``ResponsesMeter`` watches such a stream (``event:`` lines written from each event's ``type``) and keeps
the usage of its final event (response.completed, .incomplete or .failed); ``ResponsesRelay`` is the
StreamRelay (streaming.py) that sends it, settling the request once when the client is done or gone.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from jaif.inference.backends.base import BackendError, Body
from jaif.inference.streaming import StreamRelay

_FINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_TEXT = b'"response.output_text.delta"'


def chat_usage(usage: Any) -> dict | None:
    """The Responses API's usage as the gateway meters it (prompt and completion tokens)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def output_text(response: Body) -> str:
    """The text of a response's output items (to count, where the upstream reported no usage)."""
    parts = []
    for item in response.get("output") or ():
        if isinstance(item, dict):
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
            if isinstance(item.get("arguments"), str):
                parts.append(item["arguments"])
    return "".join(parts)


def budget(body: Body, raw_size: int, context_length: int) -> int:
    """Tokens to reserve: the input (its bytes bound its tokens) and max_output_tokens, within the context;
    the whole context where a stored conversation (previous_response_id) or no output limit leaves it open."""
    limit = body.get("max_output_tokens")
    if body.get("previous_response_id") is not None or type(limit) is not int or limit < 1:
        return context_length
    return min(context_length, raw_size + limit)


class ResponsesMeter:
    """What StreamRelay reads of a stream (``usage``, ``usage_source``, ``ttft_s``, ``text``), for typed events."""

    include_usage = False  # no usage chunk of jaif's own is ever added to these streams
    usage_sent = True

    def __init__(self, *, started: float) -> None:
        self.started = started
        self.ttft_s: float | None = None
        self.usage: dict | None = None
        self.usage_source = "upstream"
        self.sequence = 0
        self._deltas: list[str] = []

    def feed(self, payload: bytes) -> bytes:
        """One event's JSON, framed as the Responses API sends it: ``event: <type>`` then ``data:``."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        kind = b"message"
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            kind = str(event.get("type") or "message").encode()
            if isinstance(event.get("sequence_number"), int):
                self.sequence = event["sequence_number"] + 1
            if kind == _TEXT[1:-1] and isinstance(event.get("delta"), str):
                self._deltas.append(event["delta"])
            elif b'"' + kind + b'"' in _FINAL and isinstance(event.get("response"), dict):
                self.usage = chat_usage(event["response"].get("usage")) or self.usage
        return b"event: " + kind + b"\ndata: " + payload + b"\n\n"

    def text(self) -> str:
        return "".join(self._deltas)

    def error_event(self, message: str) -> bytes:
        data = {"type": "error", "code": "upstream_error", "message": message, "param": None,
                "sequence_number": self.sequence}  # fmt: skip
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


class ResponsesRelay(StreamRelay):
    """A StreamRelay of typed events: passed on as they come, without ``data: [DONE]`` at the end; a
    stream that breaks ends with an ``error`` event."""

    _meter: ResponsesMeter  # type: ignore[assignment]

    async def _events(self) -> AsyncGenerator[bytes, None]:
        meter = self._meter
        try:
            yield meter.feed(self._first)
            async for payload in self._upstream:
                yield meter.feed(payload)
            self._outcome = ("ok", 200)
        except BackendError as exc:
            self._outcome = ("error", 502)
            yield meter.error_event(f"The model server failed mid-stream: {exc.message}")
