"""Token counts before a request runs: exact where the backend can count, else a safe upper bound;
and the request-size limits checked before anything costly.

The bound matters for quotas: a reservation must never be smaller than what the request can use.
Byte-level BPE tokenizers emit at least one byte per token, so UTF-8 bytes plus a template allowance
per message bound the prompt; the context length bounds prompt and completion together.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaif.errors import InvalidRequest
from jaif.inference.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest

TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS = 16

Request = ChatCompletionRequest | CompletionRequest | EmbeddingRequest | RerankRequest
# A cross-encoder reads the query with each document, between a few special tokens.
RERANK_PAIR_TOKENS = 4


@dataclass(frozen=True, slots=True)
class PromptSize:
    items: int  # messages, prompts or embedding inputs
    size: int  # UTF-8 bytes of their text (token ids: their number)
    upper_bound: int  # tokens the prompt can be at most


def measure(request: Request) -> PromptSize:
    """One pass over the prompt, without tokenising it."""
    if isinstance(request, ChatCompletionRequest):
        size = sum(len(m.text().encode()) for m in request.messages)
        items = len(request.messages)
        return PromptSize(items, size, TEMPLATE_TOKENS + size + TEMPLATE_TOKENS_PER_MESSAGE * items)
    if isinstance(request, CompletionRequest):
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        size = sum(len(p.encode()) for p in prompts)
        return PromptSize(len(prompts), size, TEMPLATE_TOKENS + size)
    if isinstance(request, RerankRequest):
        query = len(request.query.encode())
        size = sum(len(d.encode()) for d in request.documents)
        n = len(request.documents)
        return PromptSize(n, query + size, size + n * (query + RERANK_PAIR_TOKENS))
    data = request.input
    if isinstance(data, str):
        size = len(data.encode())
        return PromptSize(1, size, size + 2)
    if data and isinstance(data[0], int):
        return PromptSize(1, len(data), len(data))
    size = bound = 0
    for x in data:
        if isinstance(x, list):
            size += len(x)
            bound += len(x)
        elif isinstance(x, str):  # validated: a list of texts or of token lists, never a mix with ints
            n = len(x.encode())
            size += n
            bound += n + 2
    return PromptSize(len(data), size, bound)


def check_limits(request: Request, prompt: PromptSize, *, max_messages: int, max_prompt_bytes: int) -> None:
    """Refuse, with a 400 naming the parameter, a request with more messages (prompts, inputs) or a
    larger prompt than the limits allow: checked before the prompt is tokenised or anything reserved."""
    param = "messages" if isinstance(request, ChatCompletionRequest) else (
        "prompt" if isinstance(request, CompletionRequest) else ITEMS_PARAM[type(request)]
    )
    if prompt.items > max_messages:
        raise too_many(param, prompt.items, max_messages)
    if prompt.size > max_prompt_bytes:
        what = "token ids" if isinstance(request, EmbeddingRequest) and _token_ids(request) else "bytes of text"
        raise InvalidRequest(
            f"Invalid '{param}': the prompt has {prompt.size} {what}; this server accepts at most "
            f"{max_prompt_bytes} per request.",
            param=param,
            code="prompt_too_large",
        )


def too_many(param: str, items: int, max_messages: int) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': array too long. Expected an array with maximum length {max_messages}, "
        f"but got an array with length {items} instead.",
        param=param,
        code="array_above_max_length",
    )


ITEMS_PARAM: dict[type, str] = {
    ChatCompletionRequest: "messages", CompletionRequest: "prompt", EmbeddingRequest: "input",
    RerankRequest: "documents",
}


def precheck_items(model: type, body: object, *, max_messages: int) -> None:
    """The message limit, checked on the parsed JSON of a large body before it is validated: pydantic
    takes ~50 ms over 15,000 messages, a JSON parse and a length a few."""
    param = ITEMS_PARAM.get(model)
    if param is None or not isinstance(body, dict):
        return
    value = body.get(param)
    if isinstance(value, list) and len(value) > max_messages and not isinstance(value[0], int):
        raise too_many(param, len(value), max_messages)


def _token_ids(request: EmbeddingRequest) -> bool:
    data = request.input
    return not isinstance(data, str) and bool(data) and not isinstance(data[0], str)


def embedding_inputs(request: EmbeddingRequest | RerankRequest) -> int:
    """The inputs the model reads one by one: each may fill its context (a rerank: one per document)."""
    if isinstance(request, RerankRequest):
        return len(request.documents)
    data = request.input
    if isinstance(data, str) or (data and isinstance(data[0], int)):
        return 1
    return len(data)
