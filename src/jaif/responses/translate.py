"""Responses API <-> chat completions: pure functions, no I/O.

A request becomes a ChatCompletionRequest (``chat_request``): ``instructions`` a system message, each
input item a chat message (function calls an assistant message's ``tool_calls``, their outputs ``tool``
messages), function tools chat tools. A chat completion becomes the response's output items
(``output_items``) and, for a follow-up, chat messages again (``output_messages``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import ValidationError

from jaif.errors import InvalidRequest, validation_error
from jaif.inference.protocol import ChatCompletionRequest
from jaif.responses.schemas import BUILTIN_TOOLS, ResponseCreate

_ROLES = ("user", "system", "developer", "assistant")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(create: ResponseCreate) -> list[dict[str, Any]]:
    """The request's input as items with ids, as GET /v1/responses/{id}/input_items lists them."""
    raw = [{"role": "user", "content": create.input}] if isinstance(create.input, str) else create.input
    items = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid value for 'input[{i}]': an item must be an object.", param=f"input[{i}]")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            items.append(_message_item(item, i))
        elif kind in ("function_call", "function_call_output"):
            items.append({**_function_item(item, i, kind), "id": item.get("id") or new_id("fc")})
        else:
            raise InvalidRequest(
                f"Unsupported input item type {kind!r} in 'input[{i}]': jaif takes messages, function_call and "
                "function_call_output items.",
                param=f"input[{i}].type", code="unsupported_value",
            )  # fmt: skip
    return items


def _message_item(item: dict, i: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(
            f"Invalid value for 'input[{i}].role': {role!r}; expected one of {', '.join(_ROLES)}.",
            param=f"input[{i}].role", code="invalid_value",
        )  # fmt: skip
    content = item.get("content")
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        parts: list[dict[str, Any]] = [{"type": text_type, "text": content}]
    elif isinstance(content, list) and content:
        parts = []
        for j, part in enumerate(content):
            where = f"input[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
                parts.append({"type": text_type, "text": part["text"]})
            elif kind == "input_image" and isinstance(part.get("image_url"), str):
                detail = part.get("detail", "auto")
                parts.append({"type": "input_image", "image_url": part["image_url"], "detail": detail})
            else:
                raise InvalidRequest(
                    f"Unsupported content part in '{where}': jaif takes input_text, output_text and input_image "
                    "(with an image_url) parts.",
                    param=f"{where}.type", code="unsupported_value",
                )  # fmt: skip
    else:
        raise InvalidRequest(
            f"Invalid value for 'input[{i}].content': a string or a non-empty list of content parts.",
            param=f"input[{i}].content", code="invalid_value",
        )  # fmt: skip
    return {"id": item.get("id") or new_id("msg"), "type": "message", "role": role, "content": parts,
            "status": "completed"}  # fmt: skip


def _function_item(item: dict, i: int, kind: str) -> dict[str, Any]:
    names = ("call_id", "name", "arguments") if kind == "function_call" else ("call_id", "output")
    output = item.get("output")
    if kind == "function_call_output" and isinstance(output, list):  # text parts: their text
        if not all(isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
                   and isinstance(part.get("text"), str) for part in output):  # fmt: skip
            raise InvalidRequest(
                f"Unsupported value for 'input[{i}].output': a string or a list of input_text parts.",
                param=f"input[{i}].output", code="unsupported_value",
            )  # fmt: skip
        item = {**item, "output": "".join(part["text"] for part in output)}
    for name in names:
        if not isinstance(item.get(name), str):
            raise InvalidRequest(
                f"Invalid value for 'input[{i}].{name}': a string is required for a {kind} item.",
                param=f"input[{i}].{name}", code="invalid_value",
            )  # fmt: skip
    return {"type": kind, **{name: item[name] for name in names}, "status": "completed"}


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input (or output) items as chat messages; consecutive function calls form one assistant message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": _chat_content(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def _chat_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(part["type"] != "input_image" for part in parts):
        return "".join(part["text"] for part in parts)
    return [
        {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
        if part["type"] == "input_image" else {"type": "text", "text": part["text"]}
        for part in parts
    ]  # fmt: skip


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            builtin = " (a built-in tool of OpenAI's platform; jaif runs none)" if kind in BUILTIN_TOOLS else ""
            raise InvalidRequest(
                f"Unsupported tool type {kind!r} in 'tools[{i}]'{builtin}: only function tools are supported.",
                param=f"tools[{i}].type", code="unsupported_value",
            )  # fmt: skip
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(
                f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name",
                code="missing_required_parameter",
            )  # fmt: skip
        function = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "Unsupported 'tool_choice': only 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}.",
        param="tool_choice", code="unsupported_value",
    )  # fmt: skip


def response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (None for plain text)."""
    fmt = text.get("format") or {"type": "text"}
    unknown = sorted(set(text) - {"format", "verbosity"})
    if unknown or text.get("verbosity") not in (None, "medium"):
        param = f"text.{unknown[0] if unknown else 'verbosity'}"
        raise InvalidRequest(f"Unsupported parameter: '{param}'.", param=param, code="unsupported_parameter")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        "Invalid value for 'text.format': type text, json_object, or json_schema with a schema.",
        param="text.format", code="invalid_value",
    )  # fmt: skip


def chat_request(
    create: ResponseCreate, history: list[dict[str, Any]], items: list[dict[str, Any]]
) -> ChatCompletionRequest:
    """The chat completion that answers ``create``: instructions, the earlier turns, this input."""
    messages = [{"role": "system", "content": create.instructions}] if create.instructions else []
    messages += history + chat_messages(items)
    body: dict[str, Any] = {"model": create.model, "messages": messages}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                         ("parallel_tool_calls", "parallel_tool_calls"), ("user", "user")):
        value = getattr(create, ours)
        if value is not None:
            body[theirs] = value
    if create.tools:
        body["tools"] = chat_tools(create.tools)
    if create.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(create.tool_choice)
    if create.text is not None and (fmt := response_format(create.text)) is not None:
        body["response_format"] = fmt
    if create.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:  # what the checks above let through, named as chat names it
        raise validation_error(exc) from exc


def output_items(completion: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A chat completion's output items, and why it is incomplete (``max_output_tokens``) or None."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        output.append(message_item(new_id("msg"), content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(function_call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name", ""),
                                         function.get("arguments") or ""))  # fmt: skip
    if not output:
        output.append(message_item(new_id("msg"), ""))
    return output, "max_output_tokens" if choice.get("finish_reason") == "length" else None


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if done else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}  # fmt: skip


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(chat_usage, dict):
        return None
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(
    create: ResponseCreate, response_id: str, *, status: str = "in_progress", output: list | None = None,
    incomplete: str | None = None, usage: dict[str, Any] | None = None, created_at: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": create.instructions,
        "max_output_tokens": create.max_output_tokens,
        "metadata": create.metadata or {},
        "model": create.model,
        "output": output or [],
        "parallel_tool_calls": create.parallel_tool_calls if create.parallel_tool_calls is not None else True,
        "previous_response_id": create.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": create.store is not False,
        "temperature": create.temperature,
        "text": create.text or {"format": {"type": "text"}},
        "tool_choice": create.tool_choice or "auto",
        "tools": [_echoed(tool) for tool in create.tools or ()],
        "top_p": create.top_p,
        "truncation": "disabled",
        **({"usage": usage} if usage is not None else {}),
        **({"user": create.user} if create.user is not None else {}),
    }


def _echoed(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as a response lists it: its strict flag and parameters always named."""
    return {"strict": None, "parameters": None, **tool}
