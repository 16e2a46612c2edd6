"""The home-made client (http11.py) as an UpstreamTransport: HTTPPool's errors already are TransportErrors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from jaif.inference.backends.http11 import HTTPPool, Stream
from jaif.inference.backends.transport import TransportError, TransportOptions, split_url


class Http11Transport:
    def __init__(self, url: str, options: TransportOptions) -> None:
        base, query = split_url(url)
        self._query = query
        self._pool = HTTPPool(
            base,
            headers=options.headers,
            connect_timeout_s=options.connect_timeout_s,
            read_timeout_s=options.read_timeout_s,
            pool_timeout_s=options.pool_timeout_s,
            max_connections=options.max_connections,
            max_body_bytes=options.max_body_bytes,
            ssl_context=options.ssl_context() if base.startswith("https:") else None,
            proxy=options.proxy,
        )

    def post(self, path: str, body: bytes, *, request_id: str | None = None) -> Coroutine[Any, Any, tuple[int, bytes]]:
        """The pool's coroutine itself (UpstreamTransport.post): one coroutine fewer on every request."""
        return self._pool.request(b"POST", path + self._query, body, extra=_request_id(request_id))

    @asynccontextmanager
    async def stream(self, path: str, body: bytes, *, request_id: str | None = None) -> AsyncIterator[_Answer]:
        stream = await self._pool.stream(b"POST", path + self._query, body, extra=_request_id(request_id))
        try:
            yield _Answer(stream)
        finally:
            stream.close()

    async def get(self, path: str, *, timeout_s: float) -> int:
        try:
            status, _ = await asyncio.wait_for(self._pool.request(b"GET", path + self._query), timeout_s)
        except TimeoutError as exc:
            raise TransportError("health check timeout", timeout=True) from exc
        return status

    async def aclose(self) -> None:
        await self._pool.aclose()


def _request_id(request_id: str | None) -> bytes:
    """The ``x-request-id`` header line (the id is letters, digits and ``-_.:`` only: web/request_ids.py)."""
    return b"x-request-id: " + request_id.encode() + b"\r\n" if request_id else b""


class _Answer:
    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self.status = stream.status

    async def read(self) -> bytes:
        return await self._stream.body()

    async def chunks(self) -> AsyncIterator[bytes]:
        while piece := await self._stream.read():
            yield piece
