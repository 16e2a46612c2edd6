"""A small pooled HTTP/1.1 client on asyncio and httptools: the gateway's road to its upstreams.

aiohttp's client costs the gateway several times the CPU per proxied request (bench/RESULTS.md,
upstream transport). This one does what the gateway needs and no more: a request with a bytes body,
keep-alive connections reused last in first out, answers framed by content-length, chunked or the
connection's end, read whole or piece by piece with back-pressure; connect, read and pool-slot
timeouts; plain HTTP or TLS (with a CA bundle of its own), directly or through an HTTP proxy
(absolute-form requests, CONNECT for TLS). It asks for no compression; gzip and deflate are undone,
within ``max_body_bytes``, if a server sends them anyway. It follows no redirects.

A kept-alive connection the server closed while idle is noticed (its close arrives) and dropped
before use. A request that fails on a reused connection before any answer is sent once more on a
new one only if it is a GET: a POST may have been processed, and whether another replica tries is
the gateway's decision (gateway.py), never this client's.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from urllib.parse import unquote, urlsplit

import httptools

from jaif.inference.backends.transport import Inflater, TransportError, tunnel

HIGH_WATER = 256 * 1024  # bytes of a streamed answer held before reading from the socket pauses


class HTTPError(TransportError):
    """The exchange failed. ``received``: some of the answer had arrived; ``timeout``: a timeout."""

    def __init__(self, message: str, *, received: bool, timeout: bool = False) -> None:
        super().__init__(message, timeout=timeout, answered=received)
        self.received = received


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the state of the exchange it carries lives on it too."""

    transport: asyncio.Transport  # set by connection_made, before the pool hands the connection out

    def __init__(self, pool: HTTPPool) -> None:
        self.pool = pool
        self.loop = pool.loop
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
        if self.streaming:
            if self.buffered > HIGH_WATER and not self.paused:
                self.paused = True
                self.transport.pause_reading()
        elif self.buffered > self.pool.max_body_bytes:
            self.fail(HTTPError(f"answer larger than {self.pool.max_body_bytes} bytes", received=True))
            return
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
        encoding = connection.encoding.decode("latin-1") if connection.encoding else None
        self._inflater = Inflater(encoding, limit=pool.max_body_bytes, per_piece=True)

    async def read(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        conn = self._conn
        while True:
            if conn.body:
                return self._inflater.feed(conn.take_body())
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return b""
            await conn.wait()

    async def body(self) -> bytes:
        """The rest of the body (at most ``max_body_bytes``)."""
        pieces, size = [], 0
        while piece := await self.read():
            pieces.append(piece)
            size += len(piece)
            if size > self._pool.max_body_bytes:
                raise HTTPError(f"answer larger than {self._pool.max_body_bytes} bytes", received=True)
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
        pool_timeout_s: float = 10.0,
        max_body_bytes: int = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        self.loop = asyncio.get_running_loop()
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        host = parts.netloc.rpartition("@")[2].encode("idna")
        fixed = {"host": host.decode(), "user-agent": "jaif", "accept-encoding": "identity", **(headers or {})}
        self._proxy: tuple[str, int] | None = None
        self._proxy_auth: str | None = None
        prefix = parts.path.rstrip("/")
        if proxy:
            via = urlsplit(proxy)
            if via.scheme != "http" or not via.hostname:
                raise ValueError("the upstream proxy must be an http:// URL")
            self._proxy = (via.hostname, via.port or 80)
            if via.username:
                token = base64.b64encode(f"{unquote(via.username)}:{unquote(via.password or '')}".encode())
                self._proxy_auth = "Basic " + token.decode()
            if self._ssl is None:  # plain HTTP: absolute-form requests to the proxy
                prefix = f"http://{host.decode()}{prefix}"
                if self._proxy_auth:
                    fixed["proxy-authorization"] = self._proxy_auth
        self._prefix = prefix.encode()
        self._fixed = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in fixed.items())
        self._heads: dict[tuple[bytes, str], bytes] = {}
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._max = max_connections
        self._keepalive = keepalive_s
        self._pool_timeout = pool_timeout_s
        self.max_body_bytes = max_body_bytes
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._count = 0  # connections open or opening, idle or busy
        self._slot_waiters: list[asyncio.Future] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    # -- requests ------------------------------------------------------------------------------
    async def request(
        self, method: bytes, path: str, body: bytes | None = None, *, extra: bytes = b""
    ) -> tuple[int, bytes]:
        """Send a request and read its whole answer: (status, body). ``extra``: header lines to add
        (each `name: value` and CRLF)."""
        conn = await self._exchange(method, path, body, whole=True, extra=extra)
        try:
            status, content = conn.status, self._decoded(conn.encoding, conn.take_body())
        finally:
            self.finish(conn)
        return status, content

    async def stream(self, method: bytes, path: str, body: bytes | None = None, *, extra: bytes = b"") -> Stream:
        """Send a request and return once the answer's headers are in; the caller closes the Stream."""
        return Stream(self, await self._exchange(method, path, body, whole=False, extra=extra))

    async def _exchange(
        self, method: bytes, path: str, body: bytes | None, *, whole: bool, extra: bytes = b""
    ) -> _Connection:
        data = self._head(method, path, body, extra)
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
            if reused and method == b"GET" and not conn.received and not conn.error.timeout:
                fresh = True  # the server had closed this idle connection: a GET once more on a new one
                continue
            raise conn.error

    def _head(self, method: bytes, path: str, body: bytes | None, extra: bytes = b"") -> bytes:
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[(method, path)] = (
                method + b" " + self._prefix + path.encode() + b" HTTP/1.1\r\n" + self._fixed
            )
        if extra:
            head += extra
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
                await asyncio.wait_for(waiter, self._pool_timeout)
            except TimeoutError as exc:
                raise HTTPError(
                    f"no free connection within {self._pool_timeout:g} s ({self._max} busy)",
                    received=False,
                    timeout=True,
                ) from exc
            finally:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                server_hostname = self._host if self._ssl else None
                if self._proxy is not None and self._ssl is not None:  # TLS through a CONNECT tunnel
                    sock = await tunnel(self.loop, self._proxy, (self._host, self._port), self._proxy_auth)
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self), sock=sock, ssl=self._ssl, server_hostname=server_hostname
                    )
                else:  # straight to the upstream, or plain HTTP to the proxy
                    host, port = self._proxy or (self._host, self._port)
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self), host, port, ssl=self._ssl, server_hostname=server_hostname
                    )
        except TimeoutError as exc:
            raise HTTPError("connect timeout", received=False, timeout=True) from exc
        except OSError as exc:
            raise HTTPError(f"cannot connect ({exc.strerror or exc})", received=False) from exc
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
        if not conn.closed:
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

    def _decoded(self, encoding: bytes | None, data: bytes) -> bytes:
        if encoding is None or not data:
            return data
        return Inflater(encoding.decode("latin-1"), limit=self.max_body_bytes).feed(data)

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
