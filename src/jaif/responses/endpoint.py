"""POST /v1/responses as a hot ASGI route (inference/endpoints.py's InferenceEndpoint: the same body
reading, authentication, error rendering and client hang-up watch as /v1/chat/completions)."""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Scope

from jaif.access.schemas import KeyPrincipal
from jaif.inference.backends.base import Body
from jaif.inference.endpoints import EventStream, Hangup, InferenceEndpoint
from jaif.inference.gateway import Gateway
from jaif.responses import service
from jaif.responses.schemas import ResponseCreate

PATH = "/v1/responses"


class ResponsesEndpoint(InferenceEndpoint):
    async def answer(
        self, scope: Scope, gateway: Gateway, who: KeyPrincipal, body: bytes, client: Hangup, request_id: str,
        client_request_id: str | None,
    ) -> Body | EventStream:
        sessions = scope["app"].state.runtime.session_factory
        return await service.create_response(gateway=gateway, sessions=sessions, principal=who, raw=body,
                                             client=client, request_id=request_id,
                                             client_request_id=client_request_id)  # fmt: skip


def routes() -> list[Route]:
    return [Route(PATH, ResponsesEndpoint(ResponseCreate), methods=["POST"], name="responses", include_in_schema=False)]
