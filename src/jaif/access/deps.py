"""FastAPI dependencies of the /v1 routes outside the gateway's own (files, batches): the project API key.

Keys are checked by the gateway's key cache (``app.state.gateway``), exactly as for /v1/chat/completions:
the same refusals (missing, revoked, expired) and the same cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jaif.access.schemas import KeyPrincipal

bearer = HTTPBearer(auto_error=False, description="A project API key, created with `jaif key create`.")


async def key_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> KeyPrincipal:
    return await request.app.state.gateway.authenticate(request.headers.get("authorization"))


# Who a route's API key speaks for: its project (every file and batch query is scoped to it) and limits.
ProjectKey = Annotated[KeyPrincipal, Depends(key_principal)]
