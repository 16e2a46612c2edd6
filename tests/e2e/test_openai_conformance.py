"""jaif's /v1 answers checked against the official OpenAPI document of the OpenAI API, and driven by the
official `openai` SDK (sync and async), through a real `jaif serve` in front of the stand-in upstream.

Raw bodies are read with httpx, so nothing the SDK tolerates (missing fields, extra framing) hides.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tests.support.api import bearer, openai_error, sse_payloads
from tests.support.databases import one_database
from tests.support.openai_schema import assert_valid
from tests.support.procs import last_line, server, upstream
from tests.support.services import Cli

pytestmark = one_database()
CHAT = {"model": "default-chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def gateway(module_env):
    """One project with a key; a chat model (alias default-chat) and an embedding model; jaif serving."""
    env = module_env
    cli = Cli(env)  # the set-up through the CLI's own code, in-process: a second a command less
    cli("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    cli("project", "create", "alpha", "--org", "Uni A", "--token-quota", "1000000")
    key = last_line(cli("key", "create", "--project", "alpha"))
    with upstream(env) as (url, _proc):
        cli("model", "add", "fake-chat", "--upstream", url, "--alias", "default-chat")
        cli("model", "add", "fake-embed", "--upstream", url, "--kind", "embedding")
        with server(env) as base:
            with httpx.Client(base_url=base, headers=bearer(key), timeout=30) as http:
                yield {"base": base, "key": key, "env": env, "http": http}


def test_models_list_and_model(gateway):
    http = gateway["http"]
    listing = http.get("/v1/models")
    assert listing.status_code == 200
    assert_valid(listing.json(), "ListModelsResponse")
    assert {m["id"] for m in listing.json()["data"]} == {"fake-chat", "default-chat", "fake-embed"}

    for name in ("fake-chat", "default-chat"):
        one = http.get(f"/v1/models/{name}")
        assert one.status_code == 200
        assert_valid(one.json(), "Model")
        assert one.json()["id"] == name


def test_chat_completion(gateway):
    reply = gateway["http"].post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert_valid(body, "CreateChatCompletionResponse")
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 tok4"
    usage = body["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def _chat_stream(http: httpx.Client, **extra) -> list[str]:
    body = {**CHAT, "max_tokens": 4, "stream": True, **extra}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        response.read()
    return sse_payloads(response)


def test_chat_stream_with_usage(gateway):
    payloads = _chat_stream(gateway["http"], stream_options={"include_usage": True})
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["object"] == "chat.completion.chunk"
    *content, final = chunks
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 4
    assert final["usage"]["total_tokens"] == final["usage"]["prompt_tokens"] + 4
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in content)
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in content) == "tok0 tok1 tok2 tok3"
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_without_usage(gateway):
    payloads = _chat_stream(gateway["http"])
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len(chunks) == 4
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["choices"], "no usage-only chunk unless the client asked for it"
        assert chunk.get("usage") is None


def test_completion(gateway):
    reply = gateway["http"].post("/v1/completions", json={"model": "fake-chat", "prompt": "once upon", "max_tokens": 3})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert_valid(body, "CreateCompletionResponse")
    assert body["choices"][0]["text"] == "tok0 tok1 tok2"
    assert body["usage"]["completion_tokens"] == 3


def test_completion_stream(gateway):
    body = {"model": "fake-chat", "prompt": ["a", "b c"], "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}
    with gateway["http"].stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        response.read()
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        assert_valid(chunk, "CreateCompletionStreamResponse")
        assert chunk["object"] == "text_completion"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "tok0 tok1 tok2"


@pytest.mark.parametrize("data", ["Jülich", ["one", "two words"], [1, 2, 3], [[1, 2], [3]]])
def test_embeddings(gateway, data):
    reply = gateway["http"].post("/v1/embeddings", json={"model": "fake-embed", "input": data})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert_valid(body, "CreateEmbeddingResponse")
    count = 1 if isinstance(data, str) or isinstance(data[0], int) else len(data)
    assert [d["index"] for d in body["data"]] == list(range(count))


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/v1/models", None, {"authorization": "Bearer jaif-nope"}, 401),
        ("GET", "/v1/models/no-such-model", None, None, 404),
        ("POST", "/v1/chat/completions", {**CHAT, "model": "no-such-model"}, None, 404),
        ("POST", "/v1/chat/completions", {"model": "fake-chat"}, None, 400),
        ("POST", "/v1/embeddings", {"model": "fake-chat", "input": "x"}, None, 400),
        ("POST", "/v1/chat/completions", {**CHAT, "max_tokens": 100000}, None, 400),
        ("GET", "/v1/nowhere", None, None, 404),
        ("DELETE", "/v1/models", None, None, 405),
    ],
)
def test_error_bodies(gateway, method, path, body, headers, status):
    response = gateway["http"].request(method, path, json=body, headers=headers)
    openai_error(response, status)  # validates against the OpenAI ErrorResponse schema


# -- the official SDK ------------------------------------------------------------------------------


def test_sdk_sync(gateway):
    with openai.OpenAI(base_url=gateway["base"] + "/v1", api_key=gateway["key"], max_retries=0) as client:
        assert {m.id for m in client.models.list()} == {"fake-chat", "default-chat", "fake-embed"}
        assert client.models.retrieve("fake-embed").id == "fake-embed"

        reply = client.chat.completions.create(model="default-chat", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=3)
        assert reply.choices[0].message.content == "tok0 tok1 tok2"
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 3

        text = client.completions.create(model="fake-chat", prompt="once", max_tokens=2)
        assert text.choices[0].text == "tok0 tok1" and text.usage.completion_tokens == 2

        vectors = client.embeddings.create(model="fake-embed", input=["a", "b"])
        assert [len(d.embedding) for d in vectors.data] == [3, 3]
        assert vectors.usage.prompt_tokens == 2

        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}],
                                           temperature=5)
        assert bad.value.param == "temperature"


def test_sdk_stream_with_usage(gateway):
    with openai.OpenAI(base_url=gateway["base"] + "/v1", api_key=gateway["key"], max_retries=0) as client:
        stream = client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " ".join(
        f"tok{i}" for i in range(6)
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_sdk_async_concurrent(gateway):
    async def run() -> tuple[list, list, object]:
        client = openai.AsyncOpenAI(base_url=gateway["base"] + "/v1", api_key=gateway["key"], max_retries=0)
        async with client:
            chats = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="default-chat", messages=[{"role": "user", "content": f"question {i}"}], max_tokens=i
                    )
                    for i in range(1, 9)
                )
            )

            async def streamed(n: int) -> list:
                stream = await client.chat.completions.create(
                    model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=n, stream=True,
                    stream_options={"include_usage": True},
                )
                return [chunk async for chunk in stream]

            streams = await asyncio.gather(*(streamed(n) for n in (2, 3, 4)))
            vectors = await client.embeddings.create(model="fake-embed", input="Jülich")
            return chats, streams, vectors

    chats, streams, vectors = asyncio.run(run())
    assert [c.usage.completion_tokens for c in chats] == list(range(1, 9))
    assert [c.choices[0].message.content.split()[-1] for c in chats] == [f"tok{i}" for i in range(8)]
    assert [s[-1].usage.completion_tokens for s in streams] == [2, 3, 4]
    assert len(vectors.data) == 1 and vectors.data[0].embedding == [0.1, 0.2, 0.3]
