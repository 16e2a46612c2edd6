"""create_app(settings): routers, error handlers, lifespan. No work at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jaif import __version__
from jaif.config import Settings
from jaif.inference.fastpath import InferenceFastPath
from jaif.inference.router import openapi_components
from jaif.inference.router import router as inference_router
from jaif.ops.router import router as ops_router
from jaif.runtime import Runtime
from jaif.web import errors
from jaif.web.limits import BodyLimit
from jaif.web.portal import router as portal_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        await runtime.start()
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
    )
    app.state.settings = settings
    errors.install(app)
    app.include_router(inference_router)
    app.include_router(ops_router)
    app.include_router(portal_router)
    app.add_middleware(BodyLimit, max_bytes=settings.inference.max_body_bytes)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(openapi_components())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def asgi_app(settings: Settings) -> InferenceFastPath:
    """What `jaif serve` runs: the app behind the hot-path middleware (inference/fastpath.py)."""
    return InferenceFastPath(create_app(settings), max_body_bytes=settings.inference.max_body_bytes)


def app_from_env() -> InferenceFastPath:
    """Factory for uvicorn workers (``jaif serve --workers N``): settings from the environment."""
    return asgi_app(Settings())
