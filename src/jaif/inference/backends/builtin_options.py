"""What the built-in chat model does with the OpenAI request options beyond plain sampling.

llama.cpp (through llama-cpp-python's public API) gives it:

- ``seed``: the sampler's seed (builtin_chat.py sets it per generation);
- ``response_format`` ``json_object`` and ``json_schema``: generation constrained by a grammar
  (llama.cpp's JSON grammar, or one made from the schema), so the answer is JSON that validates;
- ``logprobs`` / ``top_logprobs`` on /v1/chat/completions: the model's own log-probabilities, read
  from the logits each step (a logits processor that changes nothing), before penalties and sampling.

What it cannot do is refused with a 400 naming the parameter, never ignored: ``tools`` and
``tool_choice`` (and the legacy ``functions``), ``logit_bias``, ``logprobs`` on /v1/completions,
``echo``, ``best_of`` and ``suffix``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from jaif.inference.backends.base import BackendError, Body
from jaif.inference.backends.builtin_common import _invalid

MAX_TOP_LOGPROBS = 20  # OpenAI's bound


def _unsupported(param: str, what: str) -> BackendError:
    return _invalid(f"The built-in chat model does not support {what}.", param=param, code="unsupported_parameter")


def check(body: Body, *, chat: bool) -> None:
    """Refuse what the built-in chat model cannot honour (see the module's docstring)."""
    if body.get("tools"):
        raise _unsupported("tools", "tools (function calling)")
    if body.get("tool_choice") not in (None, "none"):
        raise _unsupported("tool_choice", "tool_choice")
    for legacy in ("functions", "function_call"):
        if body.get(legacy):
            raise _unsupported(legacy, f"`{legacy}` (function calling)")
    if body.get("logit_bias"):
        raise _unsupported("logit_bias", "logit_bias")
    if not chat:
        if body.get("logprobs") is not None:
            raise _unsupported("logprobs", "logprobs on /v1/completions (use /v1/chat/completions)")
        if body.get("echo"):
            raise _unsupported("echo", "echo")
        if body.get("best_of") not in (None, 1):
            raise _unsupported("best_of", "best_of")
        if body.get("suffix"):
            raise _unsupported("suffix", "suffix")
    top_logprobs(body)
    grammar(body)


def top_logprobs(body: Body) -> int | None:
    """How many alternatives to report per token (0: only the token's own); None: no logprobs."""
    top = body.get("top_logprobs")
    if top is not None and (type(top) is not int or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise _invalid(f"`top_logprobs` must be an integer from 0 to {MAX_TOP_LOGPROBS}.", param="top_logprobs")
    wanted = body.get("logprobs")
    if wanted is not None and type(wanted) is not bool:
        raise _invalid("`logprobs` must be true or false.", param="logprobs")
    if not wanted:
        if top:
            raise _invalid("`top_logprobs` needs `logprobs` set to true.", param="top_logprobs")
        return None
    return top or 0


def grammar(body: Body) -> Any:
    """The llama.cpp grammar that ``response_format`` asks for (None: free text)."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if kind == "json_object":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            message = "`response_format.json_schema.schema` must be a JSON schema object."
            raise _invalid(message, param="response_format")
        try:
            return LlamaGrammar.from_json_schema(orjson.dumps(schema).decode(), verbose=False)
        except Exception as exc:  # the converter's own errors: a schema it cannot turn into a grammar
            raise _invalid(
                f"The built-in chat model cannot follow this JSON schema: {exc}", param="response_format"
            ) from exc
    raise _invalid(
        "`response_format.type` must be text, json_object or json_schema.", param="response_format"
    )


class Logprobs:
    """A llama-cpp-python logits processor that keeps the raw logits of the step (and changes nothing),
    and turns them into OpenAI's logprobs entry of the token sampled from them."""

    def __init__(self, model: Any, top: int) -> None:
        self._model, self._top = model, top
        self._logits: np.ndarray | None = None

    def __call__(self, input_ids: Any, scores: np.ndarray) -> np.ndarray:
        self._logits = np.array(scores, dtype=np.float32)  # a copy: the buffer is llama.cpp's
        return scores

    def entry(self, token: int) -> Body:
        logits = self._logits
        assert logits is not None, "the logits processor was not called"
        peak = float(logits.max())
        log_total = peak + math.log(float(np.exp(logits - peak).sum()))
        item = self._item(token, float(logits[token]) - log_total)
        top: list[Body] = []
        if self._top:
            best = np.argpartition(-logits, self._top)[: self._top]
            best = best[np.argsort(-logits[best])]
            top = [self._item(int(t), float(logits[t]) - log_total) for t in best]
        return {**item, "top_logprobs": top}

    def _item(self, token: int, logprob: float) -> Body:
        raw = self._model.detokenize([token])
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}
