"""Real servers for the upstream transport's contract tests: uvicorn and aiohttp serving the same small
OpenAI-shaped app, a tiny forward/CONNECT proxy, and llama-cpp-python's own server (a subprocess).

The first path segment of a replica URL picks how the stand-ins answer (``http://host:port/<mode>/v1``):

    plain    JSON with content-length; streams as SSE (chunked)
    chunked  JSON in two chunks, without content-length
    gzip     JSON gzip-compressed (content-encoding: gzip)
    bomb     a small gzip body that inflates to 64 MiB
    slow     JSON after 1 s
    hang     nothing: the head never comes (a stream: the head, one event, then silence)
    drop     (aiohttp only) the request is read and counted, then the connection closed unanswered

Every server counts the POSTs it received and the client connections (by peer port) they came on.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

KEEPALIVE_S = 0.5  # the stand-ins close a kept-alive connection idle this long
BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Log:
    """What a server saw: POSTs per mode, the client ports they came from, their x-request-id headers."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.peers: list[int] = []
        self.request_ids: list[str | None] = []

    def record(self, mode: str, peer_port: int, request_id: str | None = None) -> None:
        self.posts[mode] += 1
        self.request_ids.append(request_id)
        if peer_port not in self.peers:
            self.peers.append(peer_port)


def completion(request: dict) -> dict:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "m"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def events(request: dict) -> list[bytes]:
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
        for word in ("hi", " there")
    ]  # fmt: skip
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}]})


# -- the ASGI app, for uvicorn -------------------------------------------------------------------------
def asgi_app(log: Log):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        mode = scope["path"].strip("/").split("/")[0]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            return await _send(send, 200, MODELS.encode())
        request_id = next((v.decode() for k, v in scope["headers"] if k == b"x-request-id"), None)
        log.record(mode, scope["client"][1], request_id)
        request = json.loads(body)
        if mode == "hang" and not request.get("stream"):
            await asyncio.sleep(3600)
        if mode == "slow":
            await asyncio.sleep(1.0)
        if request.get("stream"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
            for i, event in enumerate(events(request)):
                if mode == "hang" and i == 1:
                    await asyncio.sleep(3600)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            return await send({"type": "http.response.body", "body": b""})
        data = json.dumps(completion(request)).encode()
        if mode == "chunked":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": data[:10], "more_body": True})
            return await send({"type": "http.response.body", "body": data[10:]})
        if mode in ("gzip", "bomb"):
            packed = gzip.compress(data) if mode == "gzip" else BOMB
            return await _send(send, 200, packed, [(b"content-encoding", b"gzip")])
        await _send(send, 200, data)

    return app


async def _send(send, status: int, body: bytes, headers: list | None = None) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def uvicorn_server(*, certfile: Path | None = None, keyfile: Path | None = None) -> Iterator[tuple[str, Log]]:
    """uvicorn (httptools) in a thread of its own; yields its base URL and its log."""
    import uvicorn

    log = Log()
    port = free_port()
    config = uvicorn.Config(
        asgi_app(log), host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=KEEPALIVE_S,
        ssl_certfile=str(certfile) if certfile else None, ssl_keyfile=str(keyfile) if keyfile else None,
        lifespan="off", http="httptools", timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    scheme = "https" if certfile else "http"
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"{scheme}://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        thread.join(10)


# -- the same app on aiohttp's server -----------------------------------------------------------------
@contextmanager
def aiohttp_server() -> Iterator[tuple[str, Log]]:
    from aiohttp import web

    log = Log()

    async def handle(request: web.Request) -> web.StreamResponse:
        mode = request.path.strip("/").split("/")[0]
        if request.method == "GET":
            return web.Response(body=MODELS.encode(), content_type="application/json")
        body = await request.read()
        log.record(mode, request.transport.get_extra_info("peername")[1], request.headers.get("x-request-id"))
        if mode == "drop":
            request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        data = json.loads(body)
        if mode == "hang" and not data.get("stream"):
            await asyncio.sleep(3600)
        if mode == "slow":
            await asyncio.sleep(1.0)
        if data.get("stream"):
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i, event in enumerate(events(data)):
                if mode == "hang" and i == 1:
                    await asyncio.sleep(3600)
                await response.write(event)
            await response.write_eof()
            return response
        out = json.dumps(completion(data)).encode()
        if mode == "chunked":
            response = web.StreamResponse(headers={"content-type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(out[:10])
            await response.write(out[10:])
            await response.write_eof()
            return response
        if mode in ("gzip", "bomb"):
            packed = gzip.compress(out) if mode == "gzip" else BOMB
            return web.Response(body=packed, headers={"content-type": "application/json", "content-encoding": "gzip"})
        return web.Response(body=out, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, keepalive_timeout=KEEPALIVE_S, access_log=None, shutdown_timeout=0.5)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    with _loop_thread(loop):
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        try:
            yield f"http://127.0.0.1:{port}", log
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)


@contextmanager
def _loop_thread(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _cancel_all() -> None:
    """Cancel the loop's other tasks (handlers, pipes) and wait for them: nothing is left pending."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- a tiny HTTP proxy: CONNECT tunnels and absolute-form requests -------------------------------------
@contextmanager
def proxy_server() -> Iterator[tuple[str, list[str]]]:
    """Yields the proxy's URL and the request lines it was asked (``CONNECT host:port``, ``POST http://...``).
    A connection is piped to the origin its first request names (origin servers accept absolute-form)."""
    seen: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        seen.append(line)
        method, target, _ = line.split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            hostport = httpx.URL(target)
            host, port = hostport.host, hostport.port
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    loop = asyncio.new_event_loop()
    port = free_port()
    with _loop_thread(loop):
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(serve, "127.0.0.1", port), loop).result(10)
        try:
            yield f"http://127.0.0.1:{port}", seen
        finally:
            loop.call_soon_threadsafe(server.close)


# -- llama-cpp-python's server, serving the built-in SmolLM2 GGUF ---------------------------------------
LLAMA_SERVER = """
import sys, uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings
app = create_app(
    server_settings=ServerSettings(host="127.0.0.1", port=int(sys.argv[2])),
    model_settings=[ModelSettings(model=sys.argv[1], model_alias="smollm2", n_ctx=1024, n_threads=1, verbose=False)],
)
# uvicorn.run as llama_cpp.server's __main__ does, with a short keep-alive (the contract tests' idle loss)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), timeout_keep_alive=1, log_level="warning")
"""


@contextmanager
def llama_server(model: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LLAMA_SERVER, str(model), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"llama_cpp server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("llama_cpp server did not start within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tls_files(tmp: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a certificate it issued for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    assert ssl.create_default_context(cafile=str(ca_file))  # a readable CA file
    return ca_file, cert_file, key_file
