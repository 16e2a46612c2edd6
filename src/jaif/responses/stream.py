"""A chat completion stream, as the Responses API's typed server-sent events.

``ResponseStream`` reads the gateway's StreamRelay (chat chunks, framed ``data: {...}``) and writes
``event: <type>`` / ``data: {...}`` pairs: response.created and response.in_progress first; for text
response.output_item.added, response.content_part.added, response.output_text.delta (one per chunk),
response.output_text.done, response.content_part.done, response.output_item.done; for each tool call
response.output_item.added, response.function_call_arguments.delta and .done, response.output_item.done;
last response.completed (or response.incomplete at max_output_tokens) with the usage the gateway
recorded. A stream that breaks ends with ``error`` and response.failed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import orjson

from jaif.inference.streaming import StreamRelay
from jaif.responses.schemas import ResponseCreate
from jaif.responses.translate import function_call_item, message_item, new_id, response_object, usage


class ResponseStream:
    """``events`` and ``aclose`` as a StreamRelay's (endpoints.py sends it the same way): ``aclose``
    closes the relay, which settles the request's metering. ``store`` is awaited with the final response
    before response.completed is sent, so a follow-up sent as soon as it arrives finds it."""

    def __init__(
        self, create: ResponseCreate, response_id: str, relay: StreamRelay,
        store: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:  # fmt: skip
        self._create = create
        self._id = response_id
        self._relay = relay
        self._store = store
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the message item being written, with "_text" parts
        self._calls: dict[int, dict[str, Any]] = {}  # the tool calls under way, by their chat index
        self._finish: str | None = None
        self.events = self._events()

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    async def _events(self) -> AsyncGenerator[bytes, None]:
        # The events of one upstream chunk go out in one write; the first chunk is at hand already (the
        # gateway returned once it came), so response.created and .in_progress go out with it.
        created = response_object(self._create, self._id)
        head = self._event("response.created", response=created) + self._event("response.in_progress", response=created)
        async for framed in self._relay.events:
            payload = framed[6:-2]  # b"data: " ... b"\n\n"
            if payload == b"[DONE]":
                break
            chunk = orjson.loads(payload)
            out = self._failed(chunk["error"], created["created_at"]) if "error" in chunk else self._chunk(chunk)
            if out or head:
                yield head + b"".join(out)
                head = b""
            if "error" in chunk:
                return
        out = [head, *self._close_text(), *self._close_calls()]
        incomplete = "max_output_tokens" if self._finish == "length" else None
        final = response_object(
            self._create, self._id, status="incomplete" if incomplete else "completed", output=self._output,
            incomplete=incomplete, usage=usage(await self._relay.usage()), created_at=created["created_at"],
        )  # fmt: skip
        await self._store(final)
        out.append(self._event("response.incomplete" if incomplete else "response.completed", response=final))
        yield b"".join(out)

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._text is None:
                    out += self._close_calls()
                    out += self._open_text()
                assert self._text is not None
                self._text["_text"].append(text)
                out.append(self._event(
                    "response.output_text.delta", item_id=self._text["id"], output_index=self._text["_index"],
                    content_index=0, delta=text, logprobs=[],
                ))  # fmt: skip
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _open_text(self) -> list[bytes]:
        item = message_item(new_id("msg"), "", status="in_progress")
        self._text = {**item, "_index": len(self._output), "_text": []}
        self._output.append(item)  # replaced by the completed item when it is done
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self._event("response.output_item.added", output_index=self._text["_index"], item=item),
            self._event("response.content_part.added", item_id=item["id"], output_index=self._text["_index"],
                        content_index=0, part=part),
        ]  # fmt: skip

    def _close_text(self) -> list[bytes]:
        if self._text is None:
            return []
        opened, self._text = self._text, None
        index, text = opened["_index"], "".join(opened["_text"])
        item = message_item(opened["id"], text)
        self._output[index] = item
        return [
            self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                        text=text, logprobs=[]),
            self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                        part=item["content"][0]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]  # fmt: skip

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        key = call.get("index", 0)
        function = call.get("function") or {}
        opened = self._calls.get(key)
        if opened is None:
            out += self._close_text()
            item = function_call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", "",
                                      status="in_progress")  # fmt: skip
            opened = self._calls[key] = {**item, "_index": len(self._output), "_args": []}
            self._output.append(item)
            out.append(self._event("response.output_item.added", output_index=opened["_index"], item=item))
        elif function.get("name"):
            opened["name"] += function["name"]
        arguments = function.get("arguments")
        if arguments:
            opened["_args"].append(arguments)
            out.append(self._event("response.function_call_arguments.delta", item_id=opened["id"],
                                   output_index=opened["_index"], delta=arguments))  # fmt: skip
        return out

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for opened in self._calls.values():
            arguments = "".join(opened["_args"])
            item = function_call_item(opened["id"], opened["call_id"], opened["name"], arguments)
            self._output[opened["_index"]] = item
            out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                   output_index=opened["_index"], name=item["name"], arguments=arguments))  # fmt: skip
            out.append(self._event("response.output_item.done", output_index=opened["_index"], item=item))
        self._calls = {}
        return out

    def _failed(self, error: Any, created_at: int) -> list[bytes]:
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or "The model server failed mid-stream.")
        code = error.get("code") or "server_error"
        failed = response_object(self._create, self._id, status="failed", output=self._output, created_at=created_at)
        failed["error"] = {"code": code, "message": message}
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=failed),
        ]

    async def aclose(self) -> None:
        try:
            await self.events.aclose()
        finally:
            await self._relay.aclose()
