"""Health and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and replica health")
async def healthz(request: Request) -> JSONResponse:
    registry = request.app.state.runtime.registry
    now = time.monotonic()
    models = {
        name: {"replicas": len(m.replicas.replicas), "healthy": sum(r.healthy(now) for r in m.replicas.replicas)}
        for name, m in registry.models.items()
    }
    return JSONResponse({"status": "ok", "models": models})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
