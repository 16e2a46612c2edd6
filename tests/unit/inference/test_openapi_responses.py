"""jaif's OpenAPI document says what each /v1 operation answers: the OpenAI object of a 200 (and the
stream event of the streaming ones), and ErrorResponse for each error status the gateway gives."""

from __future__ import annotations

import pytest

from jaif.app import create_app
from jaif.config import Settings

SUCCESS = {
    ("get", "/v1/models"): ("ModelList", None),
    ("get", "/v1/models/{model}"): ("Model", None),
    ("post", "/v1/chat/completions"): ("ChatCompletion", "ChatCompletionChunk"),
    ("post", "/v1/completions"): ("Completion", "Completion"),
    ("post", "/v1/embeddings"): ("EmbeddingList", None),
}


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    data = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{data}/jaif.db", data_dir=data)
    return create_app(settings).openapi()


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.mark.parametrize(("method", "path"), list(SUCCESS))
def test_each_inference_operation_documents_its_answers(document, method, path):
    answers = document["paths"][path][method]["responses"]
    success, event = SUCCESS[(method, path)]
    assert answers["200"]["content"]["application/json"]["schema"] == ref(success)
    if event is None:
        assert "text/event-stream" not in answers["200"]["content"]
    else:
        chunk, done = answers["200"]["content"]["text/event-stream"]["schema"]["properties"]["data"]["anyOf"]
        assert chunk["contentSchema"] == ref(event) and chunk["contentMediaType"] == "application/json"
        assert done == {"const": "[DONE]"}
    for status in ("400", "401", "403", "404", "413", "429", "502", "503"):
        assert answers[status]["content"]["application/json"]["schema"] == ref("ErrorResponse"), status
        assert answers[status]["description"], status


def test_every_referenced_schema_is_in_the_document(document):
    schemas = document["components"]["schemas"]
    for name in ("ModelList", "Model", "ChatCompletion", "ChatCompletionChunk", "Completion", "EmbeddingList"):
        assert schemas[name]["type"] == "object", name
    error = schemas["ErrorDetail"]
    assert set(error["required"]) == {"message", "type", "param", "code"}
    assert schemas["ChatCompletionChunk"]["properties"]["object"]["const"] == "chat.completion.chunk"
