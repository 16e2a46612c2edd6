"""How `jaif serve` runs uvicorn: the app's ``__call__`` hands back its answerer's coroutine and is no
coroutine function itself (web/edge.py), so uvicorn must be told the interface; left to guess, it would
wrap the app as an ASGI 2 one and every request would fail."""

from __future__ import annotations

import uvicorn
from uvicorn.middleware.asgi2 import ASGI2Middleware

from jaif.app import create_app
from jaif.config import Settings
from jaif.server import uvicorn_options


def test_uvicorn_serves_the_app_itself_as_asgi3(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/jaif.db", data_dir=tmp_path / "var"))
    config = uvicorn.Config(app, **uvicorn_options(Settings(), host="127.0.0.1", port=8000))
    config.load()
    assert config.loaded_app is app  # no ASGI 2 adapter, no proxy-headers layer around it
    guessed = uvicorn.Config(app, host="127.0.0.1", port=8000, proxy_headers=False)
    guessed.load()
    assert isinstance(guessed.loaded_app, ASGI2Middleware)  # what the option prevents
