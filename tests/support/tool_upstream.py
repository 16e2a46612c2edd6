"""A stand-in chat upstream that calls a tool: ``python -m tests.support.tool_upstream --port N``.

Asked with ``tools`` and no ``tool`` message yet, it answers with a call of the first tool (arguments
``{"city": "Paris"}``, streamed in two pieces); otherwise with the text ``It is sunny in Paris.``. Usage is
exact to the request (5 prompt tokens per message, 7 completion tokens). ``GET /stats`` lists the bodies of
the chat requests so far (the gateway's one-token health checks left out), so that tests see what the
gateway sent.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson

from tests.support.recording_upstream import read_request, send_chunk, send_event, send_json

ARGUMENTS = ('{"city": ', '"Paris"}')
TEXT = ("It is ", "sunny in Paris.")


class ToolUpstream:
    def __init__(self) -> None:
        self.seen: list[dict] = []

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, path, body = await read_request(reader)
                if method == "GET":
                    data = self.seen if path.rstrip("/").endswith("/stats") else {
                        "object": "list", "data": [{"id": "tools", "object": "model", "created": 0, "owned_by": "t"}]
                    }  # fmt: skip
                    send_json(writer, data)
                else:
                    self.answer(writer, orjson.loads(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer(self, writer: asyncio.StreamWriter, req: dict) -> None:
        if req.get("max_tokens") != 1:
            self.seen.append(req)
        messages = req.get("messages") or []
        call = bool(req.get("tools")) and not any(m.get("role") == "tool" for m in messages)
        usage = {"prompt_tokens": 5 * len(messages), "completion_tokens": 7, "total_tokens": 5 * len(messages) + 7}
        base = {"id": "chatcmpl-t", "created": 0, "model": req.get("model")}
        name = req["tools"][0]["function"]["name"] if call else None
        if not req.get("stream"):
            message: dict = {"role": "assistant", "content": None if call else "".join(TEXT)}
            if call:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": name, "arguments": "".join(ARGUMENTS)}}]  # fmt: skip
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
            send_json(writer, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        deltas: list[dict] = [{"role": "assistant", "content": ""}]
        if call:
            deltas.append({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                           "function": {"name": name, "arguments": ARGUMENTS[0]}}]})  # fmt: skip
            deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": ARGUMENTS[1]}}]})
        else:
            deltas += [{"content": piece} for piece in TEXT]
        chunk = {**base, "object": "chat.completion.chunk"}
        for delta in deltas:
            send_event(writer, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        finish = "tool_calls" if call else "stop"
        send_event(writer, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        send_event(writer, {**chunk, "choices": [], "usage": usage})
        send_chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")


async def _main(port: int) -> None:
    upstream = ToolUpstream()
    server = await asyncio.start_server(upstream.connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_main(parser.parse_args().port))
