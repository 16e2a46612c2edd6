"""An UpstreamTransport on httpx (httpcore's pool), through its public API.

Raw bytes are read (``aiter_raw``) and transport.Inflater undoes any compression within
``max_body_bytes``. httpx's own timeouts: connect, read, write, and pool (the wait for a free
connection). Environment proxies are not read (``trust_env=False``): the proxy is a setting. httpcore
retries nothing by default, and a kept-alive connection the server closed is found readable (at its
end) when taken from the pool and is dropped there, before anything is sent on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from jaif.inference.backends.transport import Inflater, TransportError, TransportOptions, split_url


class HttpxTransport:
    def __init__(self, url: str, options: TransportOptions) -> None:
        base, self._query = split_url(url)
        self._base = base
        self._options = options
        self._client = httpx.AsyncClient(
            headers={"user-agent": "jaif", "accept-encoding": "identity", **options.headers},
            timeout=httpx.Timeout(
                connect=options.connect_timeout_s,
                read=options.read_timeout_s,
                write=options.read_timeout_s,
                pool=options.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
                keepalive_expiry=60.0,
            ),
            proxy=options.proxy,
            verify=options.ssl_context() if base.startswith("https:") else True,
            trust_env=False,
            follow_redirects=False,
        )

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.stream(path, body) as answer:
            return answer.status, await answer.read()

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[_Answer]:
        request = self._client.build_request("POST", self._base + path + self._query, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _translated(exc, answered=False) from exc
        try:
            yield _Answer(response, self._options.max_body_bytes)
        finally:
            await response.aclose()

    async def get(self, path: str, *, timeout_s: float) -> int:
        try:
            response = await self._client.get(self._base + path + self._query, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise _translated(exc, answered=False) from exc
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()


class _Answer:
    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._response = response
        self._limit = limit
        self.status = response.status_code

    async def read(self) -> bytes:
        length = self._response.headers.get("content-length")
        if length is not None and length.isdigit() and "content-encoding" not in self._response.headers:
            if int(length) > self._limit:
                raise TransportError(f"answer larger than {self._limit} bytes", answered=True)
        inflater = Inflater(self._response.headers.get("content-encoding"), limit=self._limit)
        return b"".join([piece async for piece in self._pieces(inflater)])

    def chunks(self) -> AsyncIterator[bytes]:
        encoding = self._response.headers.get("content-encoding")
        return self._pieces(Inflater(encoding, limit=self._limit, per_piece=True))

    async def _pieces(self, inflater: Inflater) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.aiter_raw():
                if piece := inflater.feed(data):
                    yield piece
        except httpx.HTTPError as exc:
            raise _translated(exc, answered=True) from exc


def _translated(exc: httpx.HTTPError, *, answered: bool) -> TransportError:
    if isinstance(exc, httpx.PoolTimeout):
        return TransportError("no free connection in time", timeout=True)
    if isinstance(exc, httpx.TimeoutException):
        what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else "read timeout"
        return TransportError(what, timeout=True, answered=answered)
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"cannot connect ({exc})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransportError(f"the connection closed ({exc})", answered=answered)
    return TransportError(f"{type(exc).__name__}: {exc}", answered=answered)
