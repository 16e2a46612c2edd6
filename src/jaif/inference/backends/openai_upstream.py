"""Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama, another jaif) as a backend.

One pooled keep-alive aiohttp session per replica. aiohttp rather than httpx on this path: measured
here, httpx's connection pool cost ~70% of the gateway's CPU per proxied request (bench/RESULTS.md).
Streams are passed on event by event, never buffered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from jaif.inference.backends.base import BackendError, Body

# Failures that mean nothing of the answer arrived: another replica may try.
_NOTHING_RECEIVED = (
    aiohttp.ClientConnectionError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)


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
        self.url = url.rstrip("/")
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop (aiohttp binds sessions to their loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=60,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout, auto_decompress=True
            )
        return self._session

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
            async with self.session.get(self.url + "/models", timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: Body) -> Body:
        try:
            async with self.session.post(self.url + path, data=orjson.dumps(body)) as response:
                content = await response.read()
                status = response.status
        except _NOTHING_RECEIVED as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=False) from exc
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
            async with self.session.post(self.url + path, data=orjson.dumps(body)) as response:
                if response.status >= 400:
                    self._decode(response.status, await response.read())
                buffer = b""
                async for piece in response.content.iter_any():
                    buffer = (buffer + piece).replace(b"\r\n", b"\n")
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Once an event was passed on, the client has bytes: only a silent failure may be retried.
            raise BackendError(f"{self.url}: stream broke ({type(exc).__name__})", retryable=not sent) from exc
        raise BackendError(f"{self.url}: stream ended without [DONE]", retryable=not sent)
