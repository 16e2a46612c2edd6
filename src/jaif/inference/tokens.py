"""Token counts before a request runs: exact where the backend can count, else a safe upper bound.

The bound matters for quotas: a reservation must never be smaller than what the request can use.
Byte-level BPE tokenizers emit at least one byte per token, so UTF-8 bytes plus a template allowance
per message bound the prompt; the context length bounds prompt and completion together.
"""

from __future__ import annotations

from jaif.inference.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS = 16


def prompt_upper_bound(request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest) -> int:
    if isinstance(request, ChatCompletionRequest):
        return TEMPLATE_TOKENS + sum(
            len(m.text().encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in request.messages
        )
    if isinstance(request, CompletionRequest):
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        return TEMPLATE_TOKENS + sum(len(p.encode()) for p in prompts)
    data = request.input
    if isinstance(data, str):
        return len(data.encode()) + 2
    if data and isinstance(data[0], int):
        return len(data)
    return sum(len(x) if isinstance(x, list) else len(x.encode()) + 2 for x in data)


def embedding_inputs(request: EmbeddingRequest) -> int:
    data = request.input
    if isinstance(data, str) or (data and isinstance(data[0], int)):
        return 1
    return len(data)
