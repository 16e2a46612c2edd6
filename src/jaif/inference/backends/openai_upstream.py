"""Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama, another jaif) as a backend.

One pool of keep-alive connections per replica (http11.py: asyncio and httptools). Measured here,
httpx's connection pool cost ~70% of the gateway's CPU per proxied request and aiohttp's client a
third (bench/RESULTS.md). Streams are passed on event by event, never buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from jaif.inference.backends.base import BackendError, Body
from jaif.inference.backends.http11 import HTTPError, HTTPPool
from jaif.inference.service import display_url

HEALTH_TIMEOUT_S = 2.0


class OpenAIUpstream:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 300.0,
        max_connections: int = 1000,
    ) -> None:
        # ``url`` is what metrics, logs, usage records and error messages show: without credentials.
        self._target = url.rstrip("/")
        self.url = display_url(self._target)
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_connections = max_connections
        self._pool: HTTPPool | None = None

    @property
    def pool(self) -> HTTPPool:
        # Made on first use, inside the running event loop (its connections belong to that loop).
        if self._pool is None:
            self._pool = HTTPPool(
                self._target,
                headers=self._headers,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                max_connections=self._max_connections,
            )
        return self._pool

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
            status, _ = await asyncio.wait_for(self.pool.request(b"GET", "/models"), HEALTH_TIMEOUT_S)
        except (HTTPError, TimeoutError):
            return False
        return status < 500

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def _post(self, path: str, body: Body) -> Body:
        try:
            status, content = await self.pool.request(b"POST", path, orjson.dumps(body))
        except HTTPError as exc:
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
        try:
            response = await self.pool.stream(b"POST", path, orjson.dumps(body))
        except HTTPError as exc:
            raise BackendError(f"{self.url}: {exc.message}", retryable=True) from exc
        try:
            if response.status >= 400:
                self._decode(response.status, await response.body())
            buffer = b""
            while piece := await response.read():
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
        except HTTPError as exc:
            # Once an event was passed on, the client has bytes: only a silent failure may be retried.
            raise BackendError(f"{self.url}: stream broke ({exc.message})", retryable=not sent) from exc
        finally:
            response.close()
        raise BackendError(f"{self.url}: stream ended without [DONE]", retryable=not sent)
