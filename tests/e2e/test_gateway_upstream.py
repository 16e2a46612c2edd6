"""The gateway in front of a real OpenAI-compatible server process, driven by the official openai SDK."""

from __future__ import annotations

import json

import openai

from tests.support.procs import jaif, last_line, wait_for


def usage_of(env, project: str) -> dict:
    return json.loads(last_line(jaif(env, "usage", "--project", project, "--json")))


def test_chat_stream_and_usage_are_metered(platform):
    client = openai.OpenAI(base_url=platform["base"] + "/v1", api_key=platform["key"])
    models = {m.id for m in client.models.list()}
    assert {"fake-chat", "default-chat"} <= models

    reply = client.chat.completions.create(
        model="default-chat", messages=[{"role": "user", "content": "hello there"}], max_tokens=5
    )
    assert reply.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4"
    assert reply.usage.completion_tokens == 5

    chunks = list(
        client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4

    client.close()
    expected_prompt = reply.usage.prompt_tokens + chunks[-1].usage.prompt_tokens
    # The server flushes usage records every 0.2 s (JAIF_METERING__FLUSH_INTERVAL_S in jaif_env).
    usage = wait_for(lambda: usage_of(platform["env"], "alpha"), lambda u: u["requests"] == 2)
    assert usage["requests"] == 2
    assert usage["prompt_tokens"] == expected_prompt
    assert usage["completion_tokens"] == 9
    assert usage["tokens_spent"] == expected_prompt + 9
