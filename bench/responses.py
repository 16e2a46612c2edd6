"""Responses API streaming against chat completions: the time to first token each adds over the engine.

One `jaif serve` in front of the stand-in upstream (jaif.testing.upstream, 16 tokens, no delay), one
client sending streamed requests one at a time, alternating `POST /v1/chat/completions` and
`POST /v1/responses` (stored, the default, and `store: false`) with the same prompt. TTFT is from sending
the request to the first text of the answer (chat: the first chunk with `delta.content`; Responses: the
first `response.output_text.delta`); the whole stream is read before the next request. Target: the
Responses API adds at most 1 ms at p50 over chat completions (issue 13).

    python bench/responses.py [--requests 400] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from harness import Setup, gateway, upstream, write_section  # noqa: E402

PROMPT = [{"role": "user", "content": "Say something."}]
CASES = {
    "chat completions": ("/chat/completions", {"model": "fake", "messages": PROMPT, "stream": True}, b'"content":"'),
    "responses (stored)": ("/responses", {"model": "fake", "input": "Say something.", "stream": True},
                           b"event: response.output_text.delta"),
    "responses (store: false)": ("/responses", {"model": "fake", "input": "Say something.", "stream": True,
                                                "store": False}, b"event: response.output_text.delta"),
}  # fmt: skip


def ttft(client: httpx.Client, path: str, body: dict, marker: bytes) -> float:
    started = time.perf_counter()
    first = None
    seen = b""
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        for data in response.iter_raw():
            if first is None:
                seen += data
                if marker in seen:
                    first = time.perf_counter() - started
    assert first is not None, seen[:500]
    return first * 1000


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="streamed requests per case")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    setup = Setup()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    try:
        with upstream(setup.env) as url:
            setup.cli("model", "add", "fake", "--upstream", url)
            with gateway(setup.env) as base, httpx.Client(
                base_url=base, headers={"authorization": f"Bearer {setup.key}"}, timeout=30
            ) as client:
                for _ in range(20):  # warm up connections, caches and the database
                    for path, body, marker in CASES.values():
                        ttft(client, path, body, marker)
                for _ in range(args.requests):
                    for name, (path, body, marker) in CASES.items():
                        times[name].append(ttft(client, path, body, marker))
    finally:
        setup.cleanup()
    chat = statistics.median(times["chat completions"])
    rows = []
    for name, values in times.items():
        p50 = statistics.median(values)
        added = "" if name == "chat completions" else f"{p50 - chat:+.2f} ms"
        rows.append(f"| {name} | {p50:.2f} ms | {quantile(values, 0.99):.2f} ms | {added} |")
        print(rows[-1], flush=True)
    if not args.no_write:
        write_section("responses", [
            "## Responses API streaming against chat completions (`bench/responses.py`)",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
            f"Python {platform.python_version()}). Command: `python bench/responses.py "
            f"{' '.join(sys.argv[1:])}`. One `jaif serve` (1 worker, SQLite) in front of the stand-in upstream "
            f"(16 tokens, no delay); {args.requests} streamed requests per case, one at a time, the cases "
            f"alternating. TTFT: from sending the request to the first text. Target: added at p50 <= 1 ms. Load "
            f"average at the end: {os.getloadavg()[0]:.1f} (the machine is shared: the p99s are its noise).",
            "",
            "| case | TTFT p50 | TTFT p99 | added at p50 over chat |",
            "|---|---|---|---|",
            *rows,
        ])  # fmt: skip


if __name__ == "__main__":
    main()
