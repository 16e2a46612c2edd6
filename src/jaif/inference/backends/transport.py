"""How OpenAIUpstream reaches a replica over HTTP: the small contract, its options and its one error.

    UpstreamTransport            one replica's origin; paths are relative to the replica's URL
      post(path, body)           -> (status, body): the whole answer, decompressed within a bound
      stream(path, body)         -> async context manager of a StreamedAnswer: status, then chunks
                                    (both with an optional ``request_id``: sent as ``x-request-id``)
      get(path, timeout_s=)      -> status (health checks)
      aclose()

An implementation (http11_transport.py, the default; aiohttp_transport.py) translates its library's
errors at its edge into TransportError and never sends a request twice: a POST that may have reached
the server is not replayed underneath the gateway, which decides itself whether another replica
tries (gateway.py, ``_with_failover``). A connection the server closed while idle is noticed before
it is used, not by sending on it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from jaif.errors import UpstreamError

if TYPE_CHECKING:
    from jaif.config import InferenceSettings
    from jaif.inference.backends.deadline import Timeouts


class TransportError(UpstreamError):
    """No usable answer: the connection, the pool, a timeout, a bound or the framing failed.

    ``timeout``: a timeout ran out. ``answered``: the answer's head had arrived (a stream broke)."""

    def __init__(self, message: str, *, timeout: bool = False, answered: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.answered = answered


class StreamedAnswer(Protocol):
    """An answer whose head arrived; its body is read piece by piece, as the server sends it."""

    status: int

    def chunks(self) -> AsyncIterator[bytes]:
        """The decompressed body, piece by piece as it arrives; raises TransportError if it breaks."""
        ...

    async def read(self) -> bytes:
        """The rest of the body, whole (at most ``max_body_bytes`` after decompression)."""
        ...


class UpstreamTransport(Protocol):
    """HTTP/1.1 with keep-alive to one replica. Made inside the event loop that uses it."""

    async def post(self, path: str, body: bytes, *, request_id: str | None = None) -> tuple[int, bytes]: ...

    def stream(
        self, path: str, body: bytes, *, request_id: str | None = None
    ) -> AbstractAsyncContextManager[StreamedAnswer]: ...

    async def get(self, path: str, *, timeout_s: float) -> int: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class TransportOptions:
    """What every transport is made with (from ``inference.*`` settings; see docs/configuration.md)."""

    connect_timeout_s: float = 3.0
    # The longest silence while waiting for the head or the next piece: a backstop, the request limit
    # (the first-byte and idle limits are OpenAIUpstream's, deadline.py).
    read_timeout_s: float = 600.0
    pool_timeout_s: float = 10.0  # the longest wait for a free connection when all are busy
    max_connections: int = 1000
    max_body_bytes: int = 64 * 1024 * 1024  # a whole answer, or one piece, after decompression
    proxy: str | None = None  # an http:// proxy (CONNECT for https upstreams)
    ca_bundle: Path | None = None  # PEM file: the CAs trusted for https upstreams instead of the system's
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: InferenceSettings, *, headers: dict[str, str] | None = None, timeouts: Timeouts | None = None
    ) -> TransportOptions:
        return cls(
            connect_timeout_s=settings.connect_timeout_s,
            # A backstop a second past the request limit, which OpenAIUpstream keeps (deadline.py).
            read_timeout_s=(timeouts.total_s if timeouts else settings.request_timeout_s) + 1.0,
            pool_timeout_s=settings.upstream_pool_timeout_s,
            max_connections=settings.max_upstream_connections,
            max_body_bytes=settings.max_upstream_body_bytes,
            proxy=settings.upstream_proxy,
            ca_bundle=settings.upstream_ca_bundle,
            headers=dict(headers or {}),
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)


def split_url(url: str) -> tuple[str, str]:
    """A replica URL as (base without query or fragment, query): requests go to base + path + query."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, ("?" + parts.query if parts.query else "")


class Inflater:
    """Undoes a content-encoding piece by piece, refusing to produce more than ``limit`` bytes in all
    (or, for a stream, per piece): a small gzip bomb never becomes a large buffer."""

    def __init__(self, encoding: str | None, *, limit: int, per_piece: bool = False) -> None:
        encoding = (encoding or "identity").strip().lower()
        if encoding in ("identity", ""):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
        else:
            raise TransportError(f"unsupported content-encoding {encoding}", answered=True)
        self._limit = limit
        self._per_piece = per_piece
        self._total = 0

    def feed(self, data: bytes) -> bytes:
        if self._zlib is not None:
            try:
                data = self._zlib.decompress(data, self._limit - self._total + 1)
            except zlib.error as exc:
                raise TransportError(f"malformed compressed answer ({exc})", answered=True) from exc
            if self._zlib.unconsumed_tail:
                self._refuse()
        self._total = len(data) if self._per_piece else self._total + len(data)
        if self._total > self._limit:
            self._refuse()
        return data

    def _refuse(self) -> None:
        raise TransportError(f"answer larger than {self._limit} bytes (after decompression)", answered=True)


async def tunnel(
    loop: asyncio.AbstractEventLoop, proxy: tuple[str, int], target: tuple[str, int], auth: str | None
) -> socket.socket:
    """A connected socket through an HTTP proxy to ``target`` (CONNECT), for TLS to be started on.
    Raises OSError when the proxy cannot be reached or refuses."""
    (family, kind, proto, _, address), *_ = await loop.getaddrinfo(*proxy, type=socket.SOCK_STREAM)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        host = f"{target[0]}:{target[1]}"
        extra = f"proxy-authorization: {auth}\r\n" if auth else ""
        await loop.sock_sendall(sock, f"CONNECT {host} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = await loop.sock_recv(sock, 4096)
            if not piece or len(answer) > 65536:
                raise OSError("the proxy closed the connection")
            answer += piece
        first = answer.split(b"\r\n", 1)[0]
        if first.split(b" ")[1:2] != [b"200"]:
            raise OSError(f"the proxy refused CONNECT ({first.decode(errors='replace')})")
    except BaseException:
        sock.close()
        raise
    return sock
