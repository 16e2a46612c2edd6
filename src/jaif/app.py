"""create_app(settings): routers, error handlers, lifespan. No work at import time."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jaif import __version__
from jaif.access.directory_router import router as directory_api
from jaif.allocations.router import router as allocations_api
from jaif.applications.router import reviews_router as reviews_api
from jaif.applications.router import router as applications_api
from jaif.calls.router import router as calls_api
from jaif.catalogue import router as catalogue_api
from jaif.catalogue import views as catalogue_views
from jaif.compute.backend import make_compute
from jaif.compute.router import router as compute_api
from jaif.config import Settings
from jaif.inference import endpoints as inference_endpoints
from jaif.inference.openapi import add_hot_operations
from jaif.inference.router import router as inference_router
from jaif.ops.router import router as ops_router
from jaif.runtime import Runtime
from jaif.support import router as support_api
from jaif.support import views as support_views
from jaif.training import router as training_api
from jaif.training import views as training_views
from jaif.web import docs as api_docs
from jaif.web import errors
from jaif.web import identity as web_identity
from jaif.web import pages as portal_pages
from jaif.web.headers import SecurityHeaders
from jaif.web.limits import BodyLimit
from jaif.web.portal import router as portal_router


def tune_gc() -> None:
    """The cyclic garbage collector, tuned for a server whose requests make many short-lived objects.

    Everything loaded by now (modules, the ORM's mappers, models' metadata) lives as long as the
    process: frozen, out of the collector's sight, so a full collection walks only what requests made
    since; full collections over the start-up heap cost the gateway ~15 µs a request. And a young
    collection every 20,000 objects instead of 700: each walks the objects of the requests in flight,
    which were collected every few dozen requests for ~6 µs a request (bench/gateway.py). Reference
    counting frees almost everything anyway; what waits for the collector is bounded by the threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def create_app(settings: Settings | None = None, *, server: bool = False) -> FastAPI:
    """``server``: the app is the process's one server (`jaif serve`), which may tune the process (tune_gc)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        await runtime.start()
        if server:
            tune_gc()
        app.state.runtime = runtime
        app.state.gateway = runtime.gateway
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="jaif",
        version=__version__,
        summary="AI Factory platform: OpenAI-compatible inference gateway",
        lifespan=lifespan,
        # /docs and /redoc are jaif's own pages with files served by jaif (web/docs.py), not a CDN's.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # jaif exports Prometheus metrics (ops/metrics.py) and configures no OpenTelemetry provider.
        # FastAPI's own instrumentation asks the global providers on every request whether one was set
        # since (several µs a request, bench/gateway.py): off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.compute = make_compute(settings)  # the scheduler: objects only, nothing started
    errors.install(app)
    app.include_router(inference_router)
    app.include_router(ops_router)
    app.include_router(portal_router)
    portal_pages.install(app)  # home, apply, review, operator console, keys, usage (web/pages/) and /static
    for services in (support_api, support_views, catalogue_api, catalogue_views, training_api, training_views):
        app.include_router(services.router)
    # The front door's API: organisations, projects, calls, applications, reviews, allocations.
    for front_door in (directory_api, calls_api, applications_api, reviews_api, allocations_api):
        app.include_router(front_door)
    app.include_router(compute_api)  # /api/v1/jobs, partitions, compute report, slurm sync
    # Sessions, CSRF, sign-in pages, /api/v1/me, project members and keys (web/identity.py).
    web_identity.install(app, settings)
    api_docs.install(app)
    # POST /v1/chat/completions, /v1/completions, /v1/embeddings: plain ASGI endpoints, mounted outside the
    # portal's middleware (sessions, CSRF) and FastAPI's routing, inside the body limit and security headers.
    inference_endpoints.mount(app)
    app.add_middleware(BodyLimit, max_bytes=settings.inference.max_body_bytes)
    # Outermost: every answer, refusals of the body limit and CSRF check included (web/headers.py).
    app.add_middleware(SecurityHeaders)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = add_hot_operations(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def asgi_app(settings: Settings) -> FastAPI:
    """What `jaif serve` runs: create_app's app, as the process's one server."""
    return create_app(settings, server=True)


def app_from_env() -> FastAPI:
    """Factory for the server's worker processes (`jaif serve`, server.py): settings from the environment."""
    return asgi_app(Settings())
