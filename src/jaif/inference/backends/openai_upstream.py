"""Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama, another jaif) as a backend.

HTTP goes through an UpstreamTransport (transport.py; http11 by default, aiohttp as an option), made on first use inside
the running event loop. Transport failures become BackendError here, with the gateway's failover
rules: nothing usable came back (refused, timed out, cut off, a 5xx, not JSON) -> ``retryable``, so
another replica may try; the upstream's own 4xx -> passed on to the client. Streams are passed on
event by event, never buffered; once an event was passed on, a failure is no longer retryable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from jaif.config import InferenceSettings
from jaif.inference.backends.base import BackendError, Body
from jaif.inference.backends.transport import TransportError, TransportOptions, UpstreamTransport
from jaif.inference.service import display_url

HEALTH_TIMEOUT_S = 2.0


def transport_factory(kind: str) -> Callable[[str, TransportOptions], UpstreamTransport]:
    """The UpstreamTransport implementation named by ``inference.upstream_transport``."""
    if kind == "aiohttp":
        from jaif.inference.backends.aiohttp_transport import AiohttpTransport

        return AiohttpTransport
    if kind == "http11":
        from jaif.inference.backends.http11_transport import Http11Transport

        return Http11Transport
    raise ValueError(f"unknown upstream transport {kind!r}")


class OpenAIUpstream:
    def __init__(self, url: str, *, api_key: str | None = None, settings: InferenceSettings | None = None) -> None:
        # ``url`` is what metrics, logs, usage records and error messages show: without credentials.
        self._target = url.rstrip("/")
        self.url = display_url(self._target)
        settings = settings or InferenceSettings()
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._options = TransportOptions.from_settings(settings, headers=headers)
        self._make = transport_factory(settings.upstream_transport)
        self._transport: UpstreamTransport | None = None

    @property
    def transport(self) -> UpstreamTransport:
        # Made on first use, inside the running event loop (its connections belong to that loop).
        if self._transport is None:
            self._transport = self._make(self._target, self._options)
        return self._transport

    async def chat(self, body: Body) -> Body:
        return await self._post("/chat/completions", body)

    def chat_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream("/chat/completions", body)

    async def complete(self, body: Body) -> Body:
        return await self._post("/completions", body)

    def complete_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream("/completions", body)

    async def embed(self, body: Body) -> Body:
        return await self._post("/embeddings", body)

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        return None

    async def health(self) -> bool:
        try:
            status = await self.transport.get("/models", timeout_s=HEALTH_TIMEOUT_S)
        except TransportError:
            return False
        return status < 500

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    async def _post(self, path: str, body: Body) -> Body:
        try:
            status, content = await self.transport.post(path, orjson.dumps(body))
        except TransportError as exc:
            # Nothing usable came back: another replica may try (as the client would have).
            raise BackendError(f"{self.url}: {exc.message}", retryable=True) from exc
        return self._decode(status, content)

    def _decode(self, status: int, content: bytes) -> Body:
        if status >= 500:
            raise BackendError(f"{self.url} answered {status}", retryable=True)
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"{self.url} answered something that is not JSON", retryable=True) from exc
        if status >= 400:
            raise BackendError(
                f"{self.url} answered {status}",
                retryable=False,
                status=status,
                body=data if isinstance(data, dict) else None,
            )
        return data

    async def _stream(self, path: str, body: Body) -> AsyncIterator[bytes]:
        sent = False
        limit = self._options.max_body_bytes
        try:
            async with self.transport.stream(path, orjson.dumps(body)) as answer:
                if answer.status >= 400:
                    self._decode(answer.status, await answer.read())
                buffer = b""
                async for piece in answer.chunks():
                    buffer = buffer + piece if buffer else piece
                    if b"\r" in buffer:
                        buffer = buffer.replace(b"\r\n", b"\n")
                    while (end := buffer.find(b"\n\n")) >= 0:
                        event, buffer = buffer[:end], buffer[end + 2 :]
                        for line in event.split(b"\n"):
                            if not line.startswith(b"data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == b"[DONE]":
                                return
                            sent = True
                            yield payload
                    if len(buffer) > limit:
                        raise TransportError(f"an event larger than {limit} bytes", answered=True)
        except TransportError as exc:
            # Once an event was passed on, the client has bytes: only a silent failure may be retried.
            what = f"stream broke ({exc.message})" if exc.answered else exc.message
            raise BackendError(f"{self.url}: {what}", retryable=not sent) from exc
        raise BackendError(f"{self.url}: stream ended without [DONE]", retryable=not sent)
