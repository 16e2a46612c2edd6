"""The OpenAI-compatible HTTP surface under /v1: validate, call the gateway once, render."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from jaif.access.schemas import KeyPrincipal
from jaif.inference import openapi as docs
from jaif.inference.gateway import Gateway
from jaif.inference.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from jaif.inference.streaming import StreamRelay

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible inference"])
bearer = HTTPBearer(auto_error=False, description="A project API key, created with `jaif key create`.")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> KeyPrincipal:
    return await gateway_of(request).authenticate(request.headers.get("authorization"))


Principal = Annotated[KeyPrincipal, Depends(principal)]


def _json(data: dict) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _body_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(ref_template=docs.REF_TEMPLATE)
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_components() -> dict:
    """Schemas the request bodies refer to, for app.openapi to add to components.schemas."""
    components: dict = docs.components()
    for model in (ChatCompletionRequest, CompletionRequest, EmbeddingRequest):
        components.update(model.model_json_schema(ref_template=docs.REF_TEMPLATE).get("$defs", {}))
    return components


async def _serve(request: Request, who: KeyPrincipal, model: type[BaseModel]) -> Response:
    # Normally answered by fastpath.InferenceFastPath before reaching here; same service, same errors.
    # The body is parsed by hand rather than as a FastAPI parameter, for errors in the OpenAI shape.
    raw = await request.body()
    gateway = gateway_of(request)
    result = await gateway.handle(who, gateway.parse(model, raw), raw)
    if isinstance(result, StreamRelay):
        return StreamingResponse(result.events, media_type="text/event-stream", headers=SSE_HEADERS,
                                 background=BackgroundTask(result.aclose))
    return _json(result)


@router.get("/models", summary="List the models this key may use", responses=docs.responses(docs.ModelList))
async def list_models(request: Request, who: Principal) -> Response:
    return _json(gateway_of(request).list_models(who))


@router.get("/models/{model:path}", summary="Describe one model", responses=docs.responses(docs.Model))
async def get_model(request: Request, model: str, who: Principal) -> Response:
    return _json(gateway_of(request).get_model(who, model))


@router.post(
    "/chat/completions",
    summary="Create a chat completion",
    openapi_extra=_body_schema(ChatCompletionRequest),
    responses=docs.responses(docs.ChatCompletion, stream=docs.ChatCompletionChunk),
)
async def chat_completions(request: Request, who: Principal) -> Response:
    return await _serve(request, who, ChatCompletionRequest)


@router.post(
    "/completions",
    summary="Create a text completion",
    openapi_extra=_body_schema(CompletionRequest),
    responses=docs.responses(docs.Completion, stream=docs.Completion),
)
async def completions(request: Request, who: Principal) -> Response:
    return await _serve(request, who, CompletionRequest)


@router.post(
    "/embeddings",
    summary="Create embeddings",
    openapi_extra=_body_schema(EmbeddingRequest),
    responses=docs.responses(docs.EmbeddingList),
)
async def embeddings(request: Request, who: Principal) -> Response:
    return await _serve(request, who, EmbeddingRequest)
