"""Gateways side by side in one run: another checkout's (``--baseline``) against this one, and this one
served by granian (``--granian``), each next to the upstream measured directly.

Every contender runs at once, in front of the same two stand-in upstreams (instant, 20 ms), and they are
measured in turn, ``--pairs`` rounds of ``--duration`` seconds with the order rotating from round to
round: this machine's throughput drifts by a third from one minute to the next, and measurements a few
seconds apart see the same machine. Medians of the rounds are reported, with the load average; a
contender's throughput against before is the median of each round's own ratio, with their range.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness import JAIF, free_port, process, served, stream_load, upstream, wrk


@contextmanager
def jaif_serve(env: dict[str, str], workers: int, src: str | None = None):
    """`jaif serve` (uvicorn), from ``src`` (a checkout's src/ folder, first on the path) if given."""
    port = free_port()
    env = {**env, "PYTHONPATH": src} if src else env
    argv = [JAIF, "serve", "--port", str(port), "--workers", str(workers)]
    with process(argv, env, f"http://127.0.0.1:{port}/healthz") as proc:
        yield served(f"http://127.0.0.1:{port}/v1", proc.pid)


@contextmanager
def granian_serve(env: dict[str, str], workers: int):
    """The same app (jaif.app:app_from_env) served by granian's ASGI interface on uvloop."""
    port = free_port()
    metrics = tempfile.mkdtemp(prefix="jaif-metrics-")
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics, "JAIF_WEB__METRICS_DIR": metrics} if workers > 1 else env
    argv = [
        str(Path(sys.executable).parent / "granian"), "--interface", "asgi", "--factory", "--loop", "uvloop",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log", "jaif.app:app_from_env",
    ]  # fmt: skip
    with process(argv, env, f"http://127.0.0.1:{port}/healthz") as proc:
        yield served(f"http://127.0.0.1:{port}/v1", proc.pid)


def compare(setup, args, body) -> list[str]:
    names = ["before", "after (uvicorn)"] + (["after (granian)"] if args.granian else [])
    load = os.getloadavg()
    rows = [
        f"| case | direct | {' | '.join(names)} | ratios |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    env = setup.env
    with upstream(env) as fast, upstream(env, delay_ms=20) as slow:
        setup.cli("model", "add", "fast", "--upstream", fast)
        setup.cli("model", "add", "slow", "--upstream", slow)
        for workers in args.workers:
            with ExitStack() as stack:
                gateways = [
                    stack.enter_context(jaif_serve(env, workers, str(Path(args.baseline).resolve() / "src"))),
                    stack.enter_context(jaif_serve(env, workers)),
                ]
                if args.granian:
                    gateways.append(stack.enter_context(granian_serve(env, workers)))
                for name, direct, model in (("instant", fast, "fast"), ("20 ms", slow, "slow")):
                    label = f"{workers} worker(s), {name} upstream"
                    rows += _rows(label, direct, gateways, model, setup.key, args, body)
                    print("\n".join(rows[-3:]), flush=True)
    rows.append(f"| load average (1, 5, 15 min) | before: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} | after: "
                + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + " |" + " |" * len(names))  # fmt: skip
    return rows


def _rows(label: str, direct: str, gateways: list, model: str, key: str, args, body) -> list[str]:
    targets = [direct, *gateways]
    for url in gateways:  # warm up: connections, leases, caches
        wrk(url + "/chat/completions", body(model), key, connections=64, duration=1)
    seq: list[list[float]] = [[] for _ in targets]
    rps: list[list[float]] = [[] for _ in targets]
    cpu: list[list[float]] = [[] for _ in targets]
    srps: list[list[float]] = [[] for _ in targets]
    for i in range(args.pairs):
        order = list(range(len(targets)))
        order = order[i % len(order):] + order[: i % len(order)]
        for t in order:
            url = targets[t]
            one = wrk(url + "/chat/completions", body(model), key, connections=1, duration=args.duration)
            seq[t].append(one["p50_ms"])
            result = wrk(url + "/chat/completions", body(model), key, connections=64, duration=args.duration,
                         servers=(url,))  # fmt: skip
            rps[t].append(result["rps"])
            cpu[t].append(result["cpu_us"][0])
            streamed = stream_load(url + "/chat/completions", body(model, stream=True), key, connections=64,
                                   duration=args.duration)  # fmt: skip
            srps[t].append(streamed["rps"])
    p50 = [statistics.median(x) for x in seq]
    r = [statistics.median(x) for x in rps]
    c = [statistics.median(x) for x in cpu]
    s = [statistics.median(x) for x in srps]
    n = f"{args.pairs} rounds of {args.duration:g} s, medians"
    return [
        f"| {label}, sequential p50 ({n}) | {p50[0]:.2f} ms | "
        + " | ".join(f"{v:.2f} ms (added {v - p50[0]:.2f})" for v in p50[1:]) + " | |",
        f"| {label}, non-streaming c=64 ({n}) | {r[0]:.0f} req/s | "
        + " | ".join(f"{v:.0f} req/s, jaif/direct {v / r[0]:.2f}, CPU {cu:.0f} µs/req"
                     for v, cu in zip(r[1:], c[1:], strict=True))
        + " | " + ", ".join(_of_before(rps, t) for t in range(2, len(rps))) + " of before |",
        f"| {label}, streaming c=64 ({n}) | {s[0]:.0f} req/s | "
        + " | ".join(f"{v:.0f} req/s, jaif/direct {v / s[0]:.2f}" for v in s[1:])
        + " | " + ", ".join(_of_before(srps, t) for t in range(2, len(srps))) + " of before |",
    ]  # fmt: skip


def _of_before(rates: list[list[float]], t: int) -> str:
    """Contender ``t`` against before (``rates[1]``): the median of the rounds' own ratios, each of two
    measurements seconds apart (as the metering rows pair theirs: the machine drifts between rounds), and
    their range."""
    ratios = [on / off for on, off in zip(rates[t], rates[1], strict=True)]
    return f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})"
