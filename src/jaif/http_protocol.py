"""uvicorn's httptools protocol, writing each response in as few send() calls as it can.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, the body with the next message, and a stream's every event on its own:
one send() each. On loopback a send() costs as much as a proxied request's JSON work
(bench/RESULTS.md). So the head is held until the body's first bytes are written (the same turn of
the event loop for every response jaif makes), and the events of a server-sent-event stream that
are written in one turn of the loop (those that arrived from the upstream together) leave together
at its end. Nothing waits longer than that turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
_END_OF_HEAD = b"\r\n\r\n"
_EVENT_STREAM = b"text/event-stream"
_LAST_CHUNK = b"0\r\n\r\n"  # how uvicorn ends a chunked body


class _CoalescingTransport:
    """Holds back a response head until the next write; in an event stream, merges the writes of one
    turn of the event loop. Everything held leaves at the latest at the loop's next turn, or on close."""

    __slots__ = ("_transport", "_held", "_loop", "_streaming", "_scheduled")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._streaming = False
        self._scheduled = False

    def write(self, data: bytes) -> None:
        held = self._held
        if not held:
            if data.startswith(_HEAD) and data.endswith(_END_OF_HEAD):  # a response head: hold it
                self._streaming = _EVENT_STREAM in data
                held.append(data)
                self._schedule()
            elif self._streaming and not data.endswith(_LAST_CHUNK):
                held.append(data)
                self._schedule()
            else:
                self._transport.write(data)
            return
        held.append(data)
        if not self._streaming or data.endswith(_LAST_CHUNK):
            self.flush()

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        held = self._held
        if held:
            data = held[0] if len(held) == 1 else b"".join(held)
            held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """Pass as uvicorn's ``http``: the httptools protocol over a coalescing transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
