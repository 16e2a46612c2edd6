"""An UpstreamTransport on aiohttp's client (keep-alive pool, C parser), public API only; not the default.

aiohttp undoes no compression here (``auto_decompress=False``): transport.Inflater does, within
``max_body_bytes``. Environment proxies are not read (``trust_env=False``): the proxy is a setting.
A free connection is waited for at most ``pool_timeout_s`` (a semaphore of ``max_connections``
slots in front of an unlimited connector, so that the wait and the connect have timeouts of their
own). aiohttp sends a POST once: it retries on a fresh connection only idempotent methods, and a
kept-alive connection the server closed is dropped from its pool when the close arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from jaif.inference.backends.transport import Inflater, TransportError, TransportOptions, split_url


class AiohttpTransport:
    def __init__(self, url: str, options: TransportOptions) -> None:
        base, self._query = split_url(url)
        self._base = base
        self._options = options
        self._slots = asyncio.Semaphore(options.max_connections)
        connector = aiohttp.TCPConnector(
            limit=0,  # the semaphore counts
            ssl=options.ssl_context() if base.startswith("https:") else False,
            keepalive_timeout=60.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"user-agent": "jaif", "accept-encoding": "identity", **options.headers},
            timeout=aiohttp.ClientTimeout(
                total=None, connect=options.connect_timeout_s, sock_read=options.read_timeout_s
            ),
            auto_decompress=False,
            trust_env=False,
            raise_for_status=False,
        )

    async def post(self, path: str, body: bytes, *, request_id: str | None = None) -> tuple[int, bytes]:
        async with self.stream(path, body, request_id=request_id) as answer:
            return answer.status, await answer.read()

    @asynccontextmanager
    async def stream(self, path: str, body: bytes, *, request_id: str | None = None) -> AsyncIterator[_Answer]:
        await self._slot()
        try:
            try:
                response = await self._session.post(
                    self._base + path + self._query, data=body, proxy=self._options.proxy, allow_redirects=False,
                    headers={"x-request-id": request_id} if request_id else None,
                )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _translated(exc, answered=False) from exc
            answer = _Answer(response, self._options.max_body_bytes)
            try:
                yield answer
            finally:
                if response.content.at_eof():
                    response.release()  # the connection is kept for the next request
                else:
                    response.close()  # read only in part: the connection is closed
        finally:
            self._slots.release()

    async def get(self, path: str, *, timeout_s: float) -> int:
        await self._slot()
        try:
            async with self._session.get(
                self._base + path + self._query,
                proxy=self._options.proxy,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translated(exc, answered=False) from exc
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        await self._session.close()

    async def _slot(self) -> None:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._options.pool_timeout_s):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise TransportError(
                    f"no free connection within {self._options.pool_timeout_s:g} s "
                    f"({self._options.max_connections} busy)",
                    timeout=True,
                ) from exc
        else:
            await self._slots.acquire()


class _Answer:
    def __init__(self, response: aiohttp.ClientResponse, limit: int) -> None:
        self._response = response
        self._limit = limit
        self.status = response.status

    async def read(self) -> bytes:
        response = self._response
        encoding = response.headers.get("content-encoding")
        length = response.content_length
        if encoding is None and length is not None:
            if length > self._limit:
                raise TransportError(f"answer larger than {self._limit} bytes", answered=True)
            try:
                return await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _translated(exc, answered=True) from exc
        inflater = Inflater(encoding, limit=self._limit)
        return b"".join([piece async for piece in self._pieces(inflater)])

    def chunks(self) -> AsyncIterator[bytes]:
        encoding = self._response.headers.get("content-encoding")
        return self._pieces(Inflater(encoding, limit=self._limit, per_piece=True))

    async def _pieces(self, inflater: Inflater) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                if piece := inflater.feed(data):
                    yield piece
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translated(exc, answered=True) from exc


def _translated(exc: BaseException, *, answered: bool) -> TransportError:
    if isinstance(exc, TimeoutError):
        what = "connect timeout" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "read timeout"
        return TransportError(what, timeout=True, answered=answered)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(f"cannot connect ({getattr(exc, 'strerror', None) or exc})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("the connection closed", answered=answered)
    return TransportError(f"{type(exc).__name__}: {exc}", answered=answered)
