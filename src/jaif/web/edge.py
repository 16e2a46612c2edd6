"""The app jaif serves: FastAPI with an edge, ASGI middleware outside FastAPI's own layers.

FastAPI builds its middleware stack as ServerErrorMiddleware (the last-resort 500), its exception
telemetry and its body-size layer, then the app's own middleware (``add_middleware``), then its exception
handlers and the router. Each layer is a call and, for most, a wrapped ``send``: on the hot /v1 routes,
whose endpoints answer every error themselves (inference/endpoints.py), the three outer ones cost a
request about a tenth of the gateway's CPU and did nothing (bench/gateway.py, bench/RESULTS.md).

``add_edge_middleware`` puts a middleware outside them instead, through FastAPI's public
``build_middleware_stack``: create_app puts the security headers and the body limit there, so every
answer, FastAPI's own 500 included, carries the security headers and every body is bounded.

``front`` goes further, for the few requests that must cost least (the hot /v1 routes,
inference/endpoints.py): a mapping of paths to the ASGI apps that answer every http request for them,
whatever its method (each refuses a method it does not serve itself). The app's ``__call__`` looks the
path up first (one dict lookup) and hands such a request straight to its answerer, with the app in the
scope as Starlette puts it there; FastAPI's ``__call__`` (and its telemetry, which jaif does not switch
on), Starlette's and every middleware are for the others. Everything else is as FastAPI builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

Front = Mapping[str, ASGIApp]


class EdgeApp(FastAPI):
    """A FastAPI app whose edge middleware wraps FastAPI's whole stack; the last one added is outermost."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edge_middleware: list[Middleware] = []
        self.front: Front = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, as servers and tools (schemathesis) tell an ASGI app from a WSGI one by it.
        if scope["type"] == "http":
            answer = self.front.get(scope["path"])
            if answer is not None:
                scope["app"] = self
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def add_edge_middleware(self, cls: Any, **options: Any) -> None:
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.edge_middleware.insert(0, Middleware(cls, **options))

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.edge_middleware):
            app = cls(app, *args, **kwargs)
        return app
