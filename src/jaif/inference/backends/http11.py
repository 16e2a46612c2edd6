"""A small pooled HTTP/1.1 client on asyncio and httptools: the gateway's road to its upstreams.

aiohttp's client was a third of the gateway's CPU per proxied request (bench/RESULTS.md). This one
does what the gateway needs and no more: a request with a bytes body, keep-alive connections reused
last in first out, answers framed by content-length, chunked or the connection's end, read whole or
piece by piece with back-pressure, connect and read timeouts, plain HTTP or TLS. It asks for no
compression (gzip and deflate are still undone if a server sends them), follows no redirects and
uses no proxy. A pooled connection the server closed meanwhile is replaced once, transparently,
when nothing of the answer had arrived on it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 256 * 1024  # bytes of a streamed answer held before reading from the socket pauses


class HTTPError(Exception):
    """The exchange failed. ``received``: some of the answer had arrived; ``timeout``: a timeout."""

    def __init__(self, message: str, *, received: bool, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.received = received
        self.timeout = timeout


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the state of the exchange it carries lives on it too."""

    def __init__(self, pool: HTTPPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.released = False  # no longer counted by the pool
        self.idle_since = 0.0
        self.last_read = 0.0
        self.active = False  # an exchange is under way
        self.streaming = False  # its body is read piece by piece (with back-pressure)
        self._reset()

    def _reset(self) -> None:
        self.error: HTTPError | None = None
        self.received = False
        self.headers_done = False
        self.complete = False
        self.status = 0
        self.body: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future | None = None
        self.encoding: bytes | None = None
        self.framed = False  # content-length or chunked; else the body ends with the connection
        self.keep_alive = False

    # -- the exchange (event loop) -------------------------------------------------------------
    def send(self, data: bytes, *, streaming: bool) -> None:
        self._reset()
        self.active = True
        self.streaming = streaming
        self.last_read = self.loop.time()
        self.transport.write(data)

    async def wait(self) -> None:
        """Until there is something new: headers, a piece of the body, the end, or an error."""
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def fail(self, error: HTTPError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    def take_body(self) -> bytes:
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.buffered = 0
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.headers_done and not self.framed:
                self.complete = True  # an answer without a length ends with its connection
                self.keep_alive = False
            else:
                self.error = HTTPError("the connection closed", received=self.received)
        self._wake()

    def data_received(self, data: bytes) -> None:
        if not self.active:  # a server speaking out of turn (a 408 on an idle connection): drop it
            self.transport.abort()
            return
        self.received = True
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(HTTPError(f"malformed answer ({exc})", received=True))

    # -- httptools callbacks -------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True
        elif name == b"content-encoding":
            self.encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.streaming and self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()


class Stream:
    """An answer whose headers arrived; read its body piece by piece, then ``close``."""

    def __init__(self, pool: HTTPPool, connection: _Connection) -> None:
        self._pool = pool
        self._conn = connection
        self.status = connection.status

    async def read(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        conn = self._conn
        while True:
            if conn.body:
                return _decoded(conn.encoding, conn.take_body(), stream=True)
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return b""
            await conn.wait()

    async def body(self) -> bytes:
        """The rest of the body."""
        pieces = []
        while piece := await self.read():
            pieces.append(piece)
        return b"".join(pieces)

    def close(self) -> None:
        """Give the connection back (kept alive if the answer was read to its end)."""
        if self._conn is not None:
            self._pool.finish(self._conn)
            self._conn = None  # type: ignore[assignment]


class HTTPPool:
    """Keep-alive connections to one origin (``base_url``'s scheme, host and port; its path prefixes
    every request's). Made and used on one event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 300.0,
        max_connections: int = 1000,
        keepalive_s: float = 60.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        self.loop = asyncio.get_running_loop()
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/").encode()
        host = parts.netloc.rpartition("@")[2].encode("idna")
        fixed = {"host": host.decode(), "user-agent": "jaif", **(headers or {})}
        self._fixed = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in fixed.items())
        self._heads: dict[tuple[bytes, str], bytes] = {}
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._max = max_connections
        self._keepalive = keepalive_s
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._count = 0  # connections open or opening, idle or busy
        self._slot_waiters: list[asyncio.Future] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    # -- requests ------------------------------------------------------------------------------
    async def request(self, method: bytes, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send a request and read its whole answer: (status, body)."""
        conn = await self._exchange(method, path, body, whole=True)
        try:
            status, content = conn.status, _decoded(conn.encoding, conn.take_body())
        finally:
            self.finish(conn)
        return status, content

    async def stream(self, method: bytes, path: str, body: bytes | None = None) -> Stream:
        """Send a request and return once the answer's headers are in; the caller closes the Stream."""
        return Stream(self, await self._exchange(method, path, body, whole=False))

    async def _exchange(self, method: bytes, path: str, body: bytes | None, *, whole: bool) -> _Connection:
        data = self._head(method, path, body)
        fresh = False
        while True:
            conn, reused = await self._checkout(fresh=fresh)
            conn.send(data, streaming=not whole)
            try:
                while conn.error is None and not (conn.complete if whole else conn.headers_done):
                    await conn.wait()
            except BaseException:
                self._discard(conn)
                raise
            if conn.error is None:
                return conn
            self._discard(conn)
            if reused and not conn.received and not conn.error.timeout:
                fresh = True  # the server had closed this idle connection: once more on a new one
                continue
            raise conn.error

    def _head(self, method: bytes, path: str, body: bytes | None) -> bytes:
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[(method, path)] = (
                method + b" " + self._prefix + path.encode() + b" HTTP/1.1\r\n" + self._fixed
            )
        if body is None:
            return head + b"\r\n"
        return head + b"content-length: %d\r\n\r\n" % len(body) + body

    # -- the pool ------------------------------------------------------------------------------
    async def _checkout(self, *, fresh: bool) -> tuple[_Connection, bool]:
        while True:
            if self._closed:
                raise HTTPError("the client is closed", received=False)
            if not fresh:
                now = self.loop.time()
                while self._idle:
                    conn = self._idle.pop()
                    if conn.closed or now - conn.idle_since > self._keepalive:
                        self._discard(conn)
                        continue
                    self._busy.add(conn)
                    if self._sweeper is None:
                        self._arm_sweeper()
                    return conn, True
            if self._count < self._max:
                self._count += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._count -= 1
                    self._wake_slot()
                    raise
                self._busy.add(conn)
                self._arm_sweeper()
                return conn, False
            waiter = self.loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                ),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise HTTPError("connect timeout", received=False, timeout=True) from exc
        except OSError as exc:
            raise HTTPError(f"cannot connect ({exc.strerror or type(exc).__name__})", received=False) from exc
        return conn

    def finish(self, conn: _Connection) -> None:
        """An exchange is over: keep the connection for the next if its answer was read to the end."""
        self._busy.discard(conn)
        conn.active = False
        if conn.complete and conn.error is None and conn.keep_alive and not conn.closed and not self._closed:
            conn.idle_since = self.loop.time()
            self._idle.append(conn)
            self._wake_slot()
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        conn.active = False
        if not conn.closed and conn.transport is not None:
            conn.transport.abort()
        if not conn.released:
            conn.released = True
            self._count -= 1
            self._wake_slot()

    def _wake_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- read timeouts: one timer per pool, not one per request ---------------------------------
    def _arm_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            interval = max(0.05, min(1.0, self._read_timeout / 4))
            self._sweeper = self.loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = self.loop.time() - self._read_timeout
        for conn in [c for c in self._busy if c.last_read < deadline and not c.complete]:
            conn.fail(HTTPError("read timeout", received=conn.received, timeout=True))
        if self._busy:
            self._arm_sweeper()

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in [*self._idle, *self._busy]:
            self._discard(conn)
        self._idle.clear()
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_result(None)


def _decoded(encoding: bytes | None, data: bytes, *, stream: bool = False) -> bytes:
    if encoding in (None, b"identity", b"") or not data:
        return data
    if encoding not in (b"gzip", b"x-gzip", b"deflate") or stream:
        # A compressed stream would need one decompressor across pieces; jaif never asks for one.
        raise HTTPError(f"unsupported content-encoding {encoding.decode(errors='replace')}", received=True)
    return zlib.decompress(data, zlib.MAX_WBITS | 32)



class Http11Transport:
    """HTTPPool as an UpstreamTransport (for comparison in bench/gateway.py)."""

    def __init__(self, url: str, options) -> None:
        from jaif.inference.backends.transport import split_url

        split_url(url)
        self._pool = HTTPPool(
            url,
            headers=options.headers,
            connect_timeout_s=options.connect_timeout_s,
            read_timeout_s=options.read_timeout_s,
            max_connections=options.max_connections,
        )

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        from jaif.inference.backends.transport import TransportError

        try:
            return await self._pool.request(b"POST", path, body)
        except HTTPError as exc:
            raise TransportError(exc.message, timeout=exc.timeout, answered=exc.received) from exc

    def stream(self, path: str, body: bytes):
        from contextlib import asynccontextmanager

        from jaif.inference.backends.transport import TransportError

        pool = self._pool

        class _Answer:
            def __init__(self, stream: Stream) -> None:
                self._stream = stream
                self.status = stream.status

            async def read(self) -> bytes:
                try:
                    return await self._stream.body()
                except HTTPError as exc:
                    raise TransportError(exc.message, answered=True) from exc

            async def chunks(self):
                try:
                    while piece := await self._stream.read():
                        yield piece
                except HTTPError as exc:
                    raise TransportError(exc.message, answered=True) from exc

        @asynccontextmanager
        async def opened():
            try:
                stream = await pool.stream(b"POST", path, body)
            except HTTPError as exc:
                raise TransportError(exc.message, timeout=exc.timeout) from exc
            try:
                yield _Answer(stream)
            finally:
                stream.close()

        return opened()

    async def get(self, path: str, *, timeout_s: float) -> int:
        from jaif.inference.backends.transport import TransportError

        try:
            status, _ = await asyncio.wait_for(self._pool.request(b"GET", path), timeout_s)
        except (HTTPError, TimeoutError) as exc:
            raise TransportError(str(exc)) from exc
        return status

    async def aclose(self) -> None:
        await self._pool.aclose()
