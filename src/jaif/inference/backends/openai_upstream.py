"""Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama, another jaif) as a backend.

One pooled keep-alive httpx client per replica; streams are passed on event by event, never buffered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson

from jaif.inference.backends.base import BackendError, Body


class OpenAIUpstream:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 300.0,
        max_connections: int = 1000,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def chat(self, body: Body) -> Body:
        return await self._post("/chat/completions", body)

    def chat_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream("/chat/completions", body)

    async def complete(self, body: Body) -> Body:
        return await self._post("/completions", body)

    def complete_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream("/completions", body)

    async def embed(self, body: Body) -> Body:
        return await self._post("/embeddings", body)

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        return None

    async def health(self) -> bool:
        try:
            response = await self._client.get("/models", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, body: Body) -> Body:
        try:
            response = await self._client.post(path, content=orjson.dumps(body))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # Nothing came back: safe to try another replica.
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=False) from exc
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Body:
        if response.status_code >= 500:
            raise BackendError(f"{self.url} answered {response.status_code}", retryable=True)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BackendError(f"{self.url} answered something that is not JSON", retryable=True) from exc
        if response.status_code >= 400:
            raise BackendError(
                f"{self.url} answered {response.status_code}",
                retryable=False,
                status=response.status_code,
                body=data if isinstance(data, dict) else None,
            )
        return data

    async def _stream(self, path: str, body: Body) -> AsyncIterator[bytes]:
        request = self._client.build_request("POST", path, content=orjson.dumps(body))
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.url}: {type(exc).__name__}", retryable=False) from exc
        sent = False
        try:
            if response.status_code >= 400:
                await response.aread()
                self._decode(response)
            buffer = b""
            async for piece in response.aiter_raw():
                buffer = (buffer + piece).replace(b"\r\n", b"\n")
                while True:
                    end = buffer.find(b"\n\n")
                    if end < 0:
                        break
                    event, buffer = buffer[:end], buffer[end + 2 :]
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        sent = True
                        yield payload
        except httpx.HTTPError as exc:
            # Once an event was passed on, the client has bytes: only a silent failure may be retried.
            raise BackendError(f"{self.url}: stream broke ({type(exc).__name__})", retryable=not sent) from exc
        finally:
            await response.aclose()
        raise BackendError(f"{self.url}: stream ended without [DONE]", retryable=not sent)
