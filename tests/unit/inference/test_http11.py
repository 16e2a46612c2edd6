"""The gateway's upstream HTTP client (inference/backends/http11.py) against a raw asyncio server."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from jaif.inference.backends.http11 import HTTPError, HTTPPool


class _Server:
    """Answers each request with the next of ``answers`` (raw bytes; None: close without answering)."""

    def __init__(self, answers: list[bytes | None], *, hang: bool = False) -> None:
        self.answers = list(answers)
        self.hang = hang  # once all answers are out: keep the connection open and say nothing
        self.requests: list[bytes] = []
        self.connections = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
            else:
                if self.hang:
                    await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_requests_reuse_one_keep_alive_connection_and_send_the_body():
    server = _Server([ok(b'{"a": 1}'), ok(b'{"a": 2}')])
    async with server as url:
        pool = HTTPPool(url, headers={"authorization": "Bearer k"})
        assert await pool.request(b"POST", "/chat/completions", b'{"x": 1}') == (200, b'{"a": 1}')
        assert await pool.request(b"POST", "/chat/completions", b"{}") == (200, b'{"a": 2}')
        await pool.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: Bearer k\r\n" in first and b"content-length: 8\r\n" in first
    assert first.endswith(b'\r\n\r\n{"x": 1}')


async def test_a_chunked_answer_is_read_piece_by_piece_and_whole():
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with _Server([chunked, chunked]) as url:
        pool = HTTPPool(url)
        stream = await pool.stream(b"POST", "/x", b"{}")
        assert stream.status == 200
        assert await stream.body() == b"hello world"
        stream.close()
        assert await pool.request(b"GET", "/x") == (200, b"hello world")
        await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error():
    server = _Server([ok(b"1"), None, ok(b"2")])
    async with server as url:
        pool = HTTPPool(url)
        assert await pool.request(b"GET", "/a") == (200, b"1")
        # The server drops the kept-alive connection at the next request, before answering it.
        assert await pool.request(b"GET", "/b") == (200, b"2")
        await pool.aclose()
    assert server.connections == 2


async def test_failures_say_whether_anything_was_received():
    async with _Server([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"]) as url:
        pool = HTTPPool(url)
        with pytest.raises(HTTPError) as cut:
            await pool.request(b"GET", "/a")
        assert cut.value.received
        await pool.aclose()
    pool = HTTPPool(url)  # the server is gone now
    with pytest.raises(HTTPError) as refused:
        await pool.request(b"GET", "/a")
    assert not refused.value.received and not refused.value.timeout
    await pool.aclose()


async def test_a_silent_server_hits_the_read_timeout():
    async with _Server([b"HTTP/1.1 200 OK\r\n"], hang=True) as url:
        pool = HTTPPool(url, read_timeout_s=0.2)
        with pytest.raises(HTTPError) as late:
            await asyncio.wait_for(pool.request(b"GET", "/a"), 5)
        assert late.value.timeout
        await pool.aclose()


async def test_a_gzipped_answer_is_unpacked():
    packed = gzip.compress(b'{"ok": true}')
    async with _Server([ok(packed, b"content-encoding: gzip")]) as url:
        pool = HTTPPool(url)
        assert await pool.request(b"GET", "/a") == (200, b'{"ok": true}')
        await pool.aclose()


async def test_no_more_connections_than_the_limit():
    server = _Server([ok(b"%d" % i) for i in range(6)])
    async with server as url:
        pool = HTTPPool(url, max_connections=1)
        answers = await asyncio.gather(*(pool.request(b"GET", "/a") for _ in range(6)))
        await pool.aclose()
    assert sorted(body for _, body in answers) == [b"%d" % i for i in range(6)]
    assert server.connections == 1
