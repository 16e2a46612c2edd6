"""The OpenAI-compatible model listing under /v1: GET /v1/models and /v1/models/{model}.

The three hot operations (chat completions, completions, embeddings) are plain ASGI endpoints in
inference/endpoints.py, mounted ahead of this router.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from jaif.access.schemas import KeyPrincipal
from jaif.inference import openapi as docs
from jaif.inference.gateway import Gateway

router = APIRouter(prefix="/v1", tags=[docs.TAG])
bearer = HTTPBearer(auto_error=False, description=docs.BEARER_DESCRIPTION)


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> KeyPrincipal:
    return await gateway_of(request).authenticate(request.headers.get("authorization"))


Principal = Annotated[KeyPrincipal, Depends(principal)]


def _json(data: dict) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


@router.get("/models", summary="List the models this key may use", responses=docs.responses(docs.ModelList))
async def list_models(request: Request, who: Principal) -> Response:
    return _json(gateway_of(request).list_models(who))


@router.get("/models/{model:path}", summary="Describe one model", responses=docs.responses(docs.Model))
async def get_model(request: Request, model: str, who: Principal) -> Response:
    return _json(gateway_of(request).get_model(who, model))
