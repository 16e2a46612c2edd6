"""One /v1 pipeline: the app create_app builds and the one `jaif serve` runs (for one worker and for each
of N) answer the hot operations through the same mounted endpoints, and no other handler exists for them."""

from __future__ import annotations

import pytest

from jaif.app import app_from_env, asgi_app, create_app
from jaif.config import Settings
from jaif.inference.endpoints import HotRoutes, InferenceEndpoint
from jaif.inference.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    RerankRequest,
    TokenizeRequest,
)
from jaif.inference.token_endpoints import TokenEndpoint
from jaif.responses.endpoint import ResponsesEndpoint
from jaif.responses.schemas import ResponseCreate
from jaif.web.edge import EdgeApp

HOT = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
    "/v1/rerank": RerankRequest,
    "/v1/responses": ResponseCreate,
    "/v1/tokenize": TokenizeRequest,
    "/v1/detokenize": DetokenizeRequest,
}
# vLLM's own paths, served too (not in the OpenAPI document).
UNDOCUMENTED = {"/tokenize": TokenizeRequest, "/detokenize": DetokenizeRequest}


def hot_routes(app: EdgeApp) -> list:
    assert isinstance(app.front, HotRoutes)
    return app.front.routes


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("JAIF_DATABASE_URL", f"sqlite:///{tmp_path}/jaif.db")
    monkeypatch.setenv("JAIF_DATA_DIR", str(tmp_path / "var"))
    return Settings()


def test_create_app_and_jaif_serve_mount_the_same_hot_endpoints_once(settings):
    # asgi_app: what `jaif serve` runs in one process; app_from_env: what each of its N workers builds.
    for app in (create_app(settings), asgi_app(settings), app_from_env()):
        assert type(app) is EdgeApp  # no wrapper around the app that tests drive
        routes = hot_routes(app)
        assert {route.path: route.endpoint.request_model for route in routes} == {**HOT, **UNDOCUMENTED}
        assert all(route.methods == {"POST"} for route in routes)
        assert [type(route.endpoint) for route in routes] == [InferenceEndpoint] * 4 + [ResponsesEndpoint] + [
            TokenEndpoint
        ] * 4
        # No second handler: FastAPI's router has no route for these paths (nothing it could shadow).
        assert [r.path for r in app.routes if getattr(r, "path", None) in {**HOT, **UNDOCUMENTED}] == []


def test_the_openapi_document_describes_the_hot_operations(settings):
    document = create_app(settings).openapi()
    for path, model in HOT.items():
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        assert schema["title"] == model.__name__
        assert set(schema["required"]) == {name for name, field in model.model_fields.items() if field.is_required()}
        assert operation["security"] == [{"HTTPBearer": []}]
        assert operation["tags"] == ["OpenAI-compatible inference"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/"
        )
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # The request body's parts are in the document too (a chat message names ContentPart).
    schemas = document["components"]["schemas"]
    assert {"ChatMessage", "ContentPart", "StreamOptions"} <= set(schemas)
    # A chat completion's message is the assistant's, not the request's ChatMessage of the same name.
    assert schemas["ChatChoice"]["properties"]["message"] == {"$ref": "#/components/schemas/ChatCompletionMessage"}
    assert not set(UNDOCUMENTED) & set(document["paths"])
