"""How `jaif serve` runs uvicorn: the app itself, as ASGI 3, with nothing wrapped around it. The app's
``__call__`` stays a coroutine function (web/edge.py): servers and tools such as schemathesis tell an
ASGI app from a WSGI one by it."""

from __future__ import annotations

import inspect

import uvicorn

from jaif.app import create_app
from jaif.config import Settings
from jaif.server import uvicorn_options


def test_uvicorn_serves_the_app_itself_as_asgi3(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/jaif.db", data_dir=tmp_path / "var"))
    assert inspect.iscoroutinefunction(app.__call__)
    for options in (uvicorn_options(Settings(), host="127.0.0.1", port=8000),
                    {"host": "127.0.0.1", "port": 8000, "proxy_headers": False}):  # told, and left to guess
        config = uvicorn.Config(app, **options)
        config.load()
        assert config.loaded_app is app  # no ASGI 2 adapter, no proxy-headers layer around it
