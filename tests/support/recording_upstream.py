"""A stand-in upstream that notes when the gateway hangs up on it: ``python -m tests.support.recording_upstream``.

It streams ``--chunks`` chat chunks ``--chunk-ms`` apart (fewer with a smaller ``max_tokens``; with
``stream_options.include_usage`` their usage, then a usage chunk, as the OpenAI API), and answers a plain
request after ``--answer-ms``, watching its connection meanwhile as an engine does (vLLM and llama.cpp
abort a generation whose connection closed). ``GET /stats`` lists every POST so far, oldest first:
``{"stream", "started", "ended", "chunks", "closed_early"}``, times as Unix time (the tests' clock), where
``ended`` is when it stopped: the last chunk or answer written, or the connection found closed.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson


class Recorder:
    def __init__(self, *, chunks: int, chunk_s: float, answer_s: float) -> None:
        self.chunks = chunks
        self.chunk_s = chunk_s
        self.answer_s = answer_s
        self.seen: list[dict] = []

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, path, body = await read_request(reader)
                if method == "GET":
                    data = self.seen if path.rstrip("/").endswith("/stats") else {
                        "object": "list", "data": [{"id": "rec", "object": "model", "created": 0, "owned_by": "t"}]
                    }
                    send_json(writer, data)
                elif not await self.generate(reader, writer, orjson.loads(body)):
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def generate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: dict) -> bool:
        """One POST; False if the client closed the connection before the answer was whole."""
        stream = bool(req.get("stream"))
        note = {"stream": stream, "started": time.time(), "ended": None, "chunks": 0, "closed_early": False}
        n = min(self.chunks, req.get("max_tokens") or self.chunks)
        # The gateway's health check (a one-token completion) is answered at once and not recorded: the
        # tests count the requests of their clients.
        health_check = not stream and req.get("max_tokens") == 1
        if not health_check:
            self.seen.append(note)
        if not stream:
            if not health_check and await _closed_within(reader, self.answer_s):
                note.update(ended=time.time(), closed_early=True)
                return False
            text = " ".join(f"tok{i}" for i in range(n))
            message = {"role": "assistant", "content": text}
            usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
            send_json(writer, {"id": "rec", "object": "chat.completion", "created": 0, "model": req["model"],
                           "choices": [{"index": 0, "message": message, "finish_reason": "length"}], "usage": usage})
            note["ended"] = time.time()
            return True
        with_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        base = {"id": "rec", "object": "chat.completion.chunk", "created": 0, "model": req["model"]}
        for i in range(n):
            if i and await _closed_within(reader, self.chunk_s):
                note.update(ended=time.time(), closed_early=True)
                return False
            delta = {"content": f"tok{i}" if i == 0 else f" tok{i}"}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            if with_usage:
                chunk["usage"] = None
            send_event(writer, chunk)
            note["chunks"] = i + 1
        if with_usage:
            send_event(writer, {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                                            "total_tokens": 5 + n}})
        writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
        note["ended"] = time.time()
        return True


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the peer closes the connection (nothing else is sent meanwhile)."""
    try:
        return await asyncio.wait_for(reader.read(1), seconds) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """One HTTP/1.1 request off the connection: (method, path, body). Raises IncompleteReadError once the
    peer has closed it."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *headers = head.decode("latin-1").split("\r\n")
    method, path, _ = line.split(" ", 2)
    length = 0
    for header in headers:
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return method, path, await reader.readexactly(length) if length else b""


def send_json(writer: asyncio.StreamWriter, data: object) -> None:
    body = orjson.dumps(data)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    writer.write(head + body)


def send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    """One chunk of a chunked body."""
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


def send_event(writer: asyncio.StreamWriter, data: dict) -> None:
    """A server-sent event (``data: JSON``) as one chunk."""
    send_chunk(writer, b"data: " + orjson.dumps(data) + b"\n\n")


async def serve(port: int, recorder: Recorder) -> None:
    server = await asyncio.start_server(recorder.connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--chunk-ms", type=float, default=50.0)
    parser.add_argument("--answer-ms", type=float, default=5000.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, Recorder(chunks=args.chunks, chunk_s=args.chunk_ms / 1000,
                                          answer_s=args.answer_ms / 1000)))


if __name__ == "__main__":
    main()
