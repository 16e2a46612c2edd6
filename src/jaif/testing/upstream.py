"""A minimal, fast OpenAI-compatible server: the stand-in for a GPU engine in tests and benchmarks.

Raw asyncio + httptools, HTTP/1.1 keep-alive, TCP_NODELAY, an optional fixed delay per request.
It answers deterministic text ("tok0 tok1 ..."), reports exact usage (one token per word), streams
one chunk per token and honours stream_options.include_usage like the OpenAI API.
For failure tests it can answer every POST with an error status, or those whose body contains a given
text with 500, drop a stream's connection after some chunks, or sleep between chunks; or, as a hung
engine, never answer a POST (GET /models still answers).

With ``--record-request-ids`` it notes the ``x-request-id`` header of each POST (None: none sent),
and lists them, oldest first, at ``GET /v1/request-ids``.

    python -m jaif.testing.upstream --port 9001 [--delay-ms 20] [--tokens 16] [--no-usage]
        [--status 500] [--error-on TEXT] [--break-after K] [--chunk-delay-ms 100] [--hang]
        [--record-request-ids]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import time
from typing import Any

import httptools
import orjson


class _Handler(asyncio.Protocol):
    def __init__(self, server: FakeUpstream) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport  # set by connection_made, before any data arrives
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method, url, body = self.parser.get_method(), self.url, b"".join(self.body)
        self.body = []
        asyncio.get_running_loop().create_task(self.server.respond(self.transport, method, url, body))


class _RecordingHandler(_Handler):
    """A _Handler that notes each POST's x-request-id (httptools calls on_header only where it exists)."""

    def __init__(self, server: FakeUpstream) -> None:
        super().__init__(server)
        self.request_id: str | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-request-id":
            self.request_id = value.decode("latin-1")

    def on_message_complete(self) -> None:
        if self.parser.get_method() == b"POST":
            self.server.request_ids.append(self.request_id)
        self.request_id = None
        super().on_message_complete()


class FakeUpstream:
    def __init__(
        self,
        *,
        delay_ms: float = 0.0,
        tokens: int = 16,
        usage: bool = True,
        model: str = "fake",
        status: int = 200,
        break_after: int | None = None,
        chunk_delay_ms: float = 0.0,
        hang: bool = False,
        error_on: str | None = None,
        serial: bool = False,
    ) -> None:
        self.delay = delay_ms / 1000
        # One POST at a time, the others queued behind it, as llama-cpp-python's server answers.
        self.serial = asyncio.Lock() if serial else None
        self.tokens = tokens
        self.usage = usage
        self.model = model
        self.status = status  # not 200: every POST is answered with this status and an OpenAI error
        self.break_after = break_after  # streams: drop the connection after this many chunks
        self.chunk_delay = chunk_delay_ms / 1000
        self.requests = 0
        self.hang = hang  # every POST is read and never answered (a hung engine)
        self.error_on = error_on.encode() if error_on else None  # POSTs whose body contains it: a 500
        self.request_ids: collections.deque[str | None] = collections.deque(maxlen=10_000)

    async def respond(self, transport: asyncio.Transport, method: bytes, url: bytes, body: bytes) -> None:
        if self.serial is not None and method == b"POST":
            async with self.serial:
                return await self._respond(transport, method, url, body)
        return await self._respond(transport, method, url, body)

    async def _respond(self, transport: asyncio.Transport, method: bytes, url: bytes, body: bytes) -> None:
        self.requests += 1
        path = url.split(b"?")[0].rstrip(b"/")
        if method == b"GET" and path.endswith(b"/models"):
            return _send(
                transport,
                200,
                {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]},
            )
        if method == b"GET" and path.endswith(b"/request-ids"):
            return _send(transport, 200, {"request_ids": list(self.request_ids)})
        if method == b"GET" and path in (b"/health", b"/v1/health"):
            return _send(transport, 200, {"status": "ok"})
        if method != b"POST":
            return _send(
                transport,
                404,
                {"error": {"message": "not found", "type": "not_found_error", "param": None, "code": None}},
            )
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _send(
                transport,
                400,
                {"error": {"message": "bad json", "type": "invalid_request_error", "param": None, "code": None}},
            )
        if self.hang:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = 500 if self.error_on is not None and self.error_on in body else self.status
        if status != 200:
            message = f"stand-in answers {status}"
            error = {"message": message, "type": "server_error", "param": None, "code": None}
            return _send(transport, status, {"error": error})
        if path.endswith(b"/embeddings"):
            return _send(transport, 200, self._embeddings(req))
        if path in _EXTRA:
            return await _EXTRA[path](self, transport, req)
        n = min(self.tokens, req.get("max_tokens") or req.get("max_completion_tokens") or self.tokens)
        prompt_tokens = _count_prompt(req)
        chat = path.endswith(b"/chat/completions")
        if req.get("stream"):
            return await self._stream(transport, req, n, prompt_tokens, chat)
        text = " ".join(f"tok{i}" for i in range(n))
        choices = int(req.get("n") or 1)  # the same text for each choice
        out = {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": req.get("model", self.model),
            "choices": [
                {
                    "index": c,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": "length",
                    "logprobs": None,
                }
                if chat
                else {"index": c, "text": text, "finish_reason": "length", "logprobs": None}
                for c in range(choices)
            ],
        }
        if self.usage:
            out["usage"] = _usage(prompt_tokens, n * choices)
        _send(transport, 200, out)

    async def _stream(self, transport, req: dict, n: int, prompt_tokens: int, chat: bool) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        include_usage = bool((req.get("stream_options") or {}).get("include_usage")) and self.usage
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": req.get("model", self.model),
        }
        choices = int(req.get("n") or 1)  # one chunk per token and choice, the choices interleaved
        for i in range(n):
            if i == self.break_after:
                transport.close()  # mid-body: the chunked response never ends
                return
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            text = f"tok{i}" if i == 0 else f" tok{i}"
            for c in range(choices):
                choice = (
                    {
                        "index": c,
                        "delta": {"content": text} if i else {"role": "assistant", "content": text},
                        "finish_reason": "length" if i == n - 1 else None,
                        "logprobs": None,
                    }
                    if chat
                    else {"index": c, "text": text, "finish_reason": "length" if i == n - 1 else None, "logprobs": None}
                )
                chunk = {**base, "choices": [choice]}
                if include_usage:
                    chunk["usage"] = None
                _chunk(transport, b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(0)
        if include_usage:
            usage = _usage(prompt_tokens, n * choices)
            _chunk(transport, b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        _chunk(transport, b"data: [DONE]\n\n")
        transport.write(b"0\r\n\r\n")

    def _embeddings(self, req: dict) -> dict:
        inputs = req.get("input")
        # One string, or one list of token ids, is one input (as in the OpenAI API).
        one = isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int))
        inputs = [inputs] if one else inputs or []
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
        tokens = sum(len(str(x).split()) for x in inputs)
        return {
            "object": "list",
            "data": data,
            "model": req.get("model", self.model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


    # vLLM's other endpoints: /tokenize and /detokenize at the server's root, /v1/rerank, /v1/responses.
    # A token is a word: its id is its length and its first letter's code, and reads back as "w<id>".
    async def _tokenize(self, transport, req: dict) -> None:
        text = req.get("prompt")
        if text is None:
            text = " ".join(str(m.get("content") or "") for m in req.get("messages") or [])
        tokens = [len(w) * 1000 + ord(w[0]) for w in text.split()]
        _send(transport, 200, {"count": len(tokens), "max_model_len": 4096, "tokens": tokens, "token_strs": None})

    async def _detokenize(self, transport, req: dict) -> None:
        _send(transport, 200, {"prompt": " ".join(f"w{t}" for t in req.get("tokens") or [])})

    async def _rerank(self, transport, req: dict) -> None:
        """Scores each document by the words it shares with the query; usage: one token per word."""
        query = set(str(req.get("query")).split())
        docs = [str(d) for d in req.get("documents") or []]
        scored = sorted(range(len(docs)), key=lambda i: -len(query & set(docs[i].split())))
        top = req.get("top_n") or len(docs)
        results = [{"index": i, "relevance_score": len(query & set(docs[i].split())) / (len(query) or 1),
                    **({"document": {"text": docs[i]}} if req.get("return_documents") else {})}
                   for i in scored[:top]]  # fmt: skip
        tokens = sum(len(query) + len(d.split()) for d in docs)
        answer = {"id": "rerank-fake", "model": req.get("model", self.model), "results": results}
        if self.usage:
            answer["usage"] = {"total_tokens": tokens}
        _send(transport, 200, answer)

    async def _responses(self, transport, req: dict) -> None:
        """The Responses API itself: "tok0 tok1 ..." as one message; usage in input and output tokens."""
        n = min(self.tokens, req.get("max_output_tokens") or self.tokens)
        text = " ".join(f"tok{i}" for i in range(n))
        given = req.get("input")
        words = len(given.split()) if isinstance(given, str) else 3
        response: dict[str, Any] = {"id": "resp_fake", "object": "response", "created_at": int(time.time()),
                                    "model": req.get("model"), "status": "completed", "output": [], "store": False}
        message = {"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip
        usage = {"input_tokens": words, "output_tokens": n, "total_tokens": words + n,
                 "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
        final = {**response, "output": [message], **({"usage": usage} if self.usage else {})}
        if not req.get("stream"):
            return _send(transport, 200, final)
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        events: list[dict[str, Any]] = [{"type": "response.created", "response": {**response, "status": "in_progress"}}]
        events += [{"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0,
                    "content_index": 0, "delta": (" " if i else "") + f"tok{i}"} for i in range(n)]  # fmt: skip
        events.append({"type": "response.completed", "response": final})
        for seq, event in enumerate(events):
            if seq == self.break_after:
                transport.close()
                return
            data = orjson.dumps({**event, "sequence_number": seq})
            _chunk(transport, b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n")
            await asyncio.sleep(0)
        transport.write(b"0\r\n\r\n")


_EXTRA = {
    b"/tokenize": FakeUpstream._tokenize,
    b"/detokenize": FakeUpstream._detokenize,
    b"/v1/rerank": FakeUpstream._rerank,
    b"/v1/responses": FakeUpstream._responses,
}


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _count_prompt(req: dict) -> int:
    if "messages" in req:
        return sum(len(str(m.get("content") or "").split()) for m in req["messages"]) + 3
    prompt = req.get("prompt") or ""
    return sum(len(p.split()) for p in ([prompt] if isinstance(prompt, str) else prompt)) + 1


def _send(transport, status: int, data: dict) -> None:
    body = orjson.dumps(data)
    reasons = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error"}
    reason = reasons.get(status, b"Error")
    transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (status, reason, len(body))
        + body
    )


def _chunk(transport, data: bytes) -> None:
    transport.write(b"%x\r\n%s\r\n" % (len(data), data))


async def serve(host: str, port: int, upstream: FakeUpstream, *, record_request_ids: bool = False) -> None:
    loop = asyncio.get_running_loop()
    handler = _RecordingHandler if record_request_ids else _Handler
    server = await loop.create_server(lambda: handler(upstream), host, port, reuse_address=True, backlog=2048)
    print(f"fake upstream at http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--no-usage", action="store_true", help="report no usage, like some engines")
    parser.add_argument("--model", default="fake")
    parser.add_argument("--status", type=int, default=200, help="answer every POST with this status")
    parser.add_argument("--error-on", metavar="TEXT", help="answer 500 to a POST whose body contains TEXT")
    parser.add_argument(
        "--break-after", type=int, default=None, metavar="K", help="drop a stream's connection after K chunks"
    )
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="sleep between stream chunks")
    parser.add_argument("--hang", action="store_true", help="never answer a POST (GET /models still answers)")
    parser.add_argument("--serial", action="store_true", help="answer one POST at a time (llama-cpp-python's server)")
    parser.add_argument(
        "--record-request-ids", action="store_true", help="note each POST's x-request-id (GET /v1/request-ids)"
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    upstream = FakeUpstream(
        delay_ms=args.delay_ms,
        tokens=args.tokens,
        usage=not args.no_usage,
        model=args.model,
        status=args.status,
        break_after=args.break_after,
        chunk_delay_ms=args.chunk_delay_ms,
        hang=args.hang,
        error_on=args.error_on,
        serial=args.serial,
    )
    asyncio.run(serve(args.host, args.port, upstream, record_request_ids=args.record_request_ids))


if __name__ == "__main__":
    main()
