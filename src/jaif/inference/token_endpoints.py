"""POST /tokenize and /detokenize (vLLM's paths), also served as /v1/tokenize and /v1/detokenize: a model's
own token ids for a prompt or chat messages, and the text of token ids.

Hot ASGI routes like the inference operations (endpoints.py's InferenceEndpoint: the same body reading,
key authentication, OpenAI-shaped errors and request ids), answered by ``Gateway.tokenize``: the key's
project must be allowed the model; the built-in models answer themselves, an upstream's replica is asked
at its server's root (vLLM serves them there). Nothing is generated, so nothing is charged or recorded.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Scope

from jaif.access.schemas import KeyPrincipal
from jaif.inference.backends.base import Body
from jaif.inference.endpoints import EventStream, Hangup, InferenceEndpoint
from jaif.inference.gateway import Gateway
from jaif.inference.openapi import DetokenizeResponse, HotOp, TokenizeResponse
from jaif.inference.protocol import DetokenizeRequest, TokenizeRequest


class TokenEndpoint(InferenceEndpoint):
    async def answer(
        self, scope: Scope, gateway: Gateway, who: KeyPrincipal, body: bytes, client: Hangup, request_id: str,
        client_request_id: str | None,
    ) -> Body | EventStream:
        request = gateway.parse(self.request_model, body)
        return await gateway.tokenize(who, request)  # type: ignore[arg-type]


TOKENIZE: HotOp = ("/v1/tokenize", "tokenize", "Tokenize a prompt or chat messages (not charged)", TokenizeRequest,
                   TokenizeResponse, None)  # fmt: skip
DETOKENIZE: HotOp = ("/v1/detokenize", "detokenize", "Turn token ids into text (not charged)", DetokenizeRequest,
                     DetokenizeResponse, None)  # fmt: skip
# For add_hot_operations (the /v1 paths are documented; vLLM's own, without /v1, answer the same).
OPERATIONS: tuple[tuple[HotOp, bool], ...] = ((TOKENIZE, True), (DETOKENIZE, True))


def routes() -> list[Route]:
    out = []
    for path, name, _summary, request, _answer, _event in (TOKENIZE, DETOKENIZE):
        endpoint = TokenEndpoint(request)
        for served in (path, path.removeprefix("/v1")):
            out.append(Route(served, endpoint, methods=["POST"], name=f"{name}{served}", include_in_schema=False))
    return out
