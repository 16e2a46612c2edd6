"""Built-in chat model through the gateway's API vs llama-cpp-python called directly, in one run.

    .venv/bin/python bench/builtin.py [--runs 5] [--max-tokens 64]

Same model file, threads, prompt and greedy decoding on both sides. Direct and gateway rounds
alternate (direct, gateway, direct, gateway) so that machine noise hits both; tokens/s through the
gateway is measured by the client, HTTP included. Writes the figures into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).parent))
from gateway import write  # noqa: E402
from harness import Setup, gateway  # noqa: E402

PROMPT = "Write a short story about a robot who learns to paint."


def direct(runs: int, max_tokens: int, env: dict[str, str]) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "builtin_direct.py"), "--runs", str(runs),
         "--max-tokens", str(max_tokens), "--prompt", PROMPT],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return [r["tokens_per_s"] for r in json.loads(out)["runs"]]


def through(base: str, key: str, runs: int, max_tokens: int, *, stream: bool) -> list[float]:
    client = openai.OpenAI(base_url=base, api_key=key, timeout=300)
    rates = []
    for i in range(runs + 1):
        started = time.perf_counter()
        if stream:
            chunks = list(client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": PROMPT}],
                max_tokens=max_tokens, temperature=0, stream=True, stream_options={"include_usage": True}))
            tokens = chunks[-1].usage.completion_tokens
        else:
            reply = client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": PROMPT}],
                max_tokens=max_tokens, temperature=0)
            tokens = reply.usage.completion_tokens
        if i:  # the first is the warm-up (model load)
            rates.append(tokens / (time.perf_counter() - started))
    client.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    setup = Setup(builtin=True)
    try:
        direct_rates, api_rates, stream_rates = [], [], []
        with gateway(setup.env) as base:
            for _ in range(2):
                direct_rates += direct(args.runs, args.max_tokens, setup.env)
                api_rates += through(base, setup.key, args.runs, args.max_tokens, stream=False)
                stream_rates += through(base, setup.key, args.runs, args.max_tokens, stream=True)
    finally:
        setup.cleanup()
    d, a, s = (statistics.median(x) for x in (direct_rates, api_rates, stream_rates))
    rows = [
        f"| built-in chat model, {args.max_tokens} tokens, greedy, 1 thread, median of {len(direct_rates)} | "
        f"llama-cpp-python direct {d:.1f} tokens/s | through the API {a:.1f} tokens/s, streaming {s:.1f} tokens/s "
        f"| API/direct = {a / d:.2f}, streaming/direct = {s / d:.2f} |"
    ]
    print("\n".join(rows))
    write("builtin", rows, "python bench/builtin.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
