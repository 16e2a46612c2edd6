"""Health and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from jaif.ops.metrics import scrape_allowed

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness, replica health and dependencies")
async def healthz(request: Request) -> JSONResponse:
    """Always 200 while the process serves: "status" is "degraded" while the database or Redis is down
    (``dependencies``). A load balancer must not take every gateway out because their shared database
    is down: they still serve keys they know (docs/gateway.md, Failure behaviour). ``deployments_controller``:
    whether this process runs the deployments' controller (one process among all that share the database)."""
    runtime = request.app.state.runtime
    registry = runtime.registry
    now = time.monotonic()
    models = {
        name: {"replicas": len(m.replicas.replicas), "healthy": sum(r.healthy(now) for r in m.replicas.replicas)}
        for name, m in registry.models.items()
    }
    dependencies = runtime.health.states()
    status = "degraded" if "down" in dependencies.values() else "ok"
    return JSONResponse({"status": status, "models": models, "dependencies": dependencies,
                         "deployments_controller": runtime.runs_controller})


@router.get("/metrics", summary="Prometheus metrics (with JAIF_INFERENCE__METRICS_TOKEN set: as a bearer token)")
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    token = runtime.settings.inference.metrics_token
    if not scrape_allowed(request.headers.get("authorization"), token.get_secret_value() if token else None):
        return Response(
            "/metrics wants the scrape token: Authorization: Bearer <JAIF_INFERENCE__METRICS_TOKEN>\n",
            status_code=401,
            media_type="text/plain",
            headers={"www-authenticate": 'Bearer realm="metrics"'},
        )
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
