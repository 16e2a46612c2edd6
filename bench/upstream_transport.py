"""The gateway's upstream client: each UpstreamTransport side by side, through `jaif serve`, in one run.

    .venv/bin/python bench/upstream_transport.py [--duration 3] [--rounds 5] [--transports http11 aiohttp]

One gateway per transport (``JAIF_INFERENCE__UPSTREAM_TRANSPORT``), all started at once against the same
two stand-in upstreams (jaif.testing.upstream: one answering at once, one after 20 ms). Each case is
measured ``--rounds`` times, the gateways in a rotating order each round, so that the drift of a shared
machine hits them alike; the figures are medians of the rounds. Cases: sequential latency (wrk c=1,
p50), non-streaming throughput at c=64 (wrk), streaming throughput at c=64 (an asyncio SSE client),
each with the gateway's CPU per request. Writes a table into bench/RESULTS.md between the
``upstream`` markers, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import Setup, gateway, stream_load, upstream, write_section, wrk  # noqa: E402

CHAT = {"model": "M", "messages": [{"role": "user", "content": "Say hello to Jülich."}], "max_tokens": 16}


def body(model: str, *, stream: bool = False) -> dict:
    data = {**CHAT, "model": model}
    if stream:
        data.update(stream=True, stream_options={"include_usage": True})
    return data


def run_case(kind: str, gw, up, model: str, setup: Setup, duration: float) -> dict:
    if kind == "latency":
        r = wrk(gw + "/chat/completions", body(model), setup.key, connections=1, duration=duration)
        return {"value": r["p50_ms"], "cpu": None, "errors": r["errors"]}
    if kind == "json":
        r = wrk(gw + "/chat/completions", body(model), setup.key, connections=64, duration=duration, servers=(gw,))
        return {"value": r["rps"], "cpu": r["cpu_us"][0], "errors": r["errors"]}
    r = stream_load(gw + "/chat/completions", body(model, stream=True), setup.key, connections=64,
                    duration=duration, servers=(gw,))  # fmt: skip
    return {"value": r["rps"], "cpu": r["cpu_us"][0], "errors": r["errors"]}


def measure(args) -> tuple[list[str], str]:
    setup = Setup(token_quota=10**15)
    rows: list[str] = []
    try:
        with ExitStack() as stack:
            fast = stack.enter_context(upstream(setup.env))
            slow = stack.enter_context(upstream(setup.env, delay_ms=20))
            setup.cli("model", "add", "fast", "--upstream", fast)
            setup.cli("model", "add", "slow", "--upstream", slow)
            gateways = {
                t: stack.enter_context(gateway(setup.env, extra_env={"JAIF_INFERENCE__UPSTREAM_TRANSPORT": t}))
                for t in args.transports
            }
            # The direct figures: the same load straight to the upstream, for reference.
            direct = {
                ("latency", "fast"): wrk(fast + "/chat/completions", body("fast"), setup.key, connections=1,
                                         duration=args.duration)["p50_ms"],
                ("latency", "slow"): wrk(slow + "/chat/completions", body("slow"), setup.key, connections=1,
                                         duration=args.duration)["p50_ms"],
            }  # fmt: skip
            load_before = os.getloadavg()
            cases = [(k, m) for m in ("slow", "fast") for k in ("latency", "json", "stream")]
            for kind, model in cases:
                for gw in gateways.values():  # warm up: connections, leases, caches
                    run_case(kind, gw, None, model, setup, 1)
                results: dict[str, list[dict]] = {t: [] for t in gateways}
                names = list(gateways)
                for i in range(args.rounds):
                    order = names[i % len(names) :] + names[: i % len(names)]
                    for t in order:
                        results[t].append(run_case(kind, gateways[t], None, model, setup, args.duration))
                rows.append(row(kind, model, results, direct))
                print(rows[-1], flush=True)
            load_after = os.getloadavg()
    finally:
        setup.cleanup()
    load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (1-minute)"
    return rows, load


def row(kind: str, model: str, results: dict[str, list[dict]], direct: dict) -> str:
    upstream_name = "20 ms upstream" if model == "slow" else "instant upstream"
    label = {"latency": "sequential latency, p50", "json": "non-streaming, c=64", "stream": "streaming, c=64"}[kind]
    cells = []
    for rs in results.values():
        value = statistics.median(r["value"] for r in rs)
        errors = sum(r["errors"] for r in rs)
        if kind == "latency":
            cells.append(f"{value:.2f} ms (+{value - direct[('latency', model)]:.2f})")
        else:
            cpu = statistics.median(r["cpu"] for r in rs)
            spread = f"{min(r['value'] for r in rs):.0f}–{max(r['value'] for r in rs):.0f}"
            cells.append(
                f"{value:.0f} req/s ({spread}), {cpu:.0f} µs CPU/req" + (f", {errors} errors" if errors else "")
            )
    return f"| {upstream_name}, {label} | " + " | ".join(cells) + " |"


def write(rows: list[str], load: str, transports: list[str], command: str) -> None:
    write_section(
        "upstream",
        [
            "## Upstream transport (`bench/upstream_transport.py`)",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
            f"Python {platform.python_version()}; {load}; the machine is shared with other work, so the "
            f"gateways were measured side by side, in rotating order). Command: `{command}`. "
            "Latency: added over the upstream's own p50 in brackets. Throughput: median of the rounds "
            "(their range), and the gateway's CPU per request.",
            "",
            "| case | " + " | ".join(transports) + " |",
            "|---|" + "---|" * len(transports),
            *rows,
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per case and transport")
    parser.add_argument("--transports", nargs="+", default=["http11", "aiohttp"])
    parser.add_argument("--no-write", action="store_true", help="print the rows only")
    args = parser.parse_args()
    rows, load = measure(args)
    print(load)
    if not args.no_write:
        write(rows, load, args.transports, "python bench/upstream_transport.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
