"""Server-sent-event relay helpers: frame events, read the usage, time the first token."""

from __future__ import annotations

import time

import orjson

from jaif.errors import UpstreamError

_NULL_USAGE = (b'"usage":null', b'"usage": null')


class StreamMeter:
    """Watches a stream go by. The gateway always asks upstreams for include_usage; the final
    usage-only chunk (``choices: []``) is passed on only when the client asked for it too."""

    def __init__(self, *, include_usage: bool, started: float) -> None:
        self.include_usage = include_usage
        self.started = started
        self.ttft_s: float | None = None
        self.content_chunks = 0
        self._usage: dict | None = None

    def feed(self, payload: bytes) -> bytes | None:
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started
        if b'"usage"' in payload and not any(marker in payload for marker in _NULL_USAGE):
            data = orjson.loads(payload)
            usage = data.get("usage")
            if isinstance(usage, dict):
                self._usage = usage
            if not data.get("choices"):
                return b"data: " + payload + b"\n\n" if self.include_usage else None
        self.content_chunks += 1
        return b"data: " + payload + b"\n\n"

    def usage(self) -> tuple[dict, str]:
        """The upstream's usage, or, where it sent none (a broken stream), what was seen: one
        token per content chunk, as servers send them."""
        if self._usage is not None:
            return self._usage, "upstream"
        return {"prompt_tokens": 0, "completion_tokens": self.content_chunks}, "chunks"

    @staticmethod
    def error_event(message: str) -> bytes:
        return b"data: " + orjson.dumps(UpstreamError(message).to_openai()) + b"\n\n"
