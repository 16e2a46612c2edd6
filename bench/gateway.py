"""Gateway overhead: straight to a fast upstream vs through jaif, in one run.

    .venv/bin/python bench/gateway.py [--duration 5] [--workers 1 2] [--database-url URL] [--postgres-url URL]
    .venv/bin/python bench/gateway.py --baseline ../jaif-before [--granian] [--duration 2] [--pairs 3]

Measures, with the stand-in upstream (jaif.testing.upstream: keep-alive, TCP_NODELAY) answering at
once and with a 20 ms delay: sequential p50/p99 latency; throughput at concurrency 1, 16 and 64 for
non-streaming (wrk) and streaming (an asyncio client; time to first event); metering and quotas on
vs off per worker count and upstream, on SQLite and on PostgreSQL (``--postgres-url``), with the
gateway's CPU per request. Load generator, upstream and gateway share this machine's cores, so read
ratios and CPU per request, not absolutes. Writes the figures into bench/RESULTS.md between the gateway markers.

``--baseline DIR`` compares instead, side by side in one run: the gateway of another checkout (DIR, its
src/ first on the path) against this one, and with ``--granian`` this one served by granian as well
(bench/compare.py). Written between the gateway-compare markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import compare  # noqa: E402
from harness import Setup, gateway, stream_load, upstream, write_section, wrk  # noqa: E402

# The project's token quota: one it never runs out of, so that "quotas on" is the lease, reserve and
# settle path of every request, not the shortcut of a project without a quota.
QUOTA = 10**15
CHAT = {"model": "M", "messages": [{"role": "user", "content": "Say hello to Jülich."}], "max_tokens": 16}


def body(model: str, *, stream: bool = False) -> dict:
    data = {**CHAT, "model": model}
    if stream:
        data.update(stream=True, stream_options={"include_usage": True})
    return data


def measure(setup: Setup, args) -> list[str]:
    rows: list[str] = []
    env = setup.env
    with upstream(env) as fast, upstream(env, delay_ms=20) as slow:
        setup.cli("model", "add", "fast", "--upstream", fast)
        setup.cli("model", "add", "slow", "--upstream", slow)
        if not args.metering_only:
            for workers in args.workers:
                with gateway(env, workers=workers) as gw:
                    rows += scenario(setup, f"{workers} worker(s)", gw, fast, slow, args)
        rows += metering(setup, "SQLite" if setup.postgres is None else "PostgreSQL", args)
        if args.postgres_url and setup.postgres is None:
            pg = Setup(database_url=args.postgres_url, token_quota=QUOTA)
            try:
                pg.cli("model", "add", "fast", "--upstream", fast)
                pg.cli("model", "add", "slow", "--upstream", slow)
                rows += metering(pg, "PostgreSQL", args)
            finally:
                pg.cleanup()
    return rows


def metering(setup: Setup, database: str, args) -> list[str]:
    """Metering and quotas off vs on at c=64, per worker count and upstream: the gateway's req/s and its
    CPU per request. Two gateways run side by side, one with metering off and one with it on, and are
    measured in turn, ``--pairs`` times (off-on, then on-off, and so on: a drift hits both alike), each
    for ``--duration`` seconds. This VM's throughput swings by a third from one minute to the next, and
    two measurements a few seconds apart see the same machine where two fresh gateways a minute apart
    did not. The ratio is the median of the pairs' ratios; the row gives their range too."""
    rows = []
    for workers in args.workers:
        with (
            gateway(setup.env, workers=workers, metered=False) as off_gw,
            gateway(setup.env, workers=workers) as on_gw,
        ):
            for name, model in (("instant", "fast"), ("20 ms", "slow")):
                servers = {"off": off_gw, "on": on_gw}
                for gw in servers.values():  # warm up: connections, leases, caches
                    wrk(gw + "/chat/completions", body(model), setup.key, connections=64, duration=1)
                rates: dict[str, list[float]] = {"off": [], "on": []}
                cpu_us: dict[str, list[float]] = {"off": [], "on": []}
                for i in range(args.pairs):
                    for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
                        gw = servers[label]
                        result = wrk(
                            gw + "/chat/completions", body(model), setup.key, connections=64,
                            duration=args.duration, servers=(gw,),
                        )  # fmt: skip
                        rates[label].append(result["rps"])
                        cpu_us[label].append(result["cpu_us"][0])
                off, on = (statistics.median(rates[k]) for k in ("off", "on"))
                cpu_off, cpu_on = (statistics.median(cpu_us[k]) for k in ("off", "on"))
                ratios = [b / a for a, b in zip(rates["off"], rates["on"], strict=True)]
                rows.append(
                    f"| metering+quotas off vs on, {name} upstream, c=64, {workers} worker(s), {database}, "
                    f"{args.pairs} alternating pairs of {args.duration:g} s "
                    f"| off {off:.0f} req/s, gateway CPU {cpu_off:.0f} µs/req "
                    f"| on {on:.0f} req/s, gateway CPU {cpu_on:.0f} µs/req "
                    f"| on/off = {statistics.median(ratios):.2f} (pairs {min(ratios):.2f}–{max(ratios):.2f}; "
                    f"CPU per request: off/on = {cpu_off / cpu_on:.2f}) |"
                )
                print(rows[-1], flush=True)
    return rows


def scenario(setup: Setup, label: str, gw: str, fast: str, slow: str, args) -> list[str]:
    rows = []
    key, d = setup.key, args.duration
    for name, direct_url, model in (("instant", fast, "fast"), ("20 ms", slow, "slow")):
        up = direct_url
        direct = wrk(direct_url + "/chat/completions", body(model), key, connections=1, duration=d)
        through = wrk(gw + "/chat/completions", body(model), key, connections=1, duration=d)
        rows.append(
            f"| {label}, {name} upstream, sequential latency "
            f"| direct p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms "
            f"| jaif p50 {through['p50_ms']:.2f} ms, p99 {through['p99_ms']:.2f} ms "
            f"| added at p50: {through['p50_ms'] - direct['p50_ms']:.2f} ms |"
        )
        for c in (1, 16, 64):
            direct = wrk(up + "/chat/completions", body(model), key, connections=c, duration=d, servers=(up,))
            through = wrk(gw + "/chat/completions", body(model), key, connections=c, duration=d, servers=(gw, up))
            rows.append(
                f"| {label}, {name} upstream, non-streaming, c={c} | direct {direct['rps']:.0f} req/s{cpu(direct, c)} "
                f"| jaif {through['rps']:.0f} req/s ({through['errors']} non-2xx){cpu(through, c, through=True)} "
                f"| jaif/direct = {through['rps'] / direct['rps']:.2f} |"
            )
        stream = body(model, stream=True)
        for c in (1, 16, 64):
            direct = stream_load(up + "/chat/completions", stream, key, connections=c, duration=d, servers=(up,))
            through = stream_load(gw + "/chat/completions", stream, key, connections=c, duration=d, servers=(gw, up))
            rows.append(
                f"| {label}, {name} upstream, streaming, c={c} | direct {direct['rps']:.0f} req/s, TTFT p50 "
                f"{direct['ttft_p50_ms']:.2f} ms{cpu(direct, c)} | jaif {through['rps']:.0f} req/s, "
                f"TTFT p50 {through['ttft_p50_ms']:.2f} ms "
                f"({through['errors']} failed){cpu(through, c, through=True)} "
                f"| jaif/direct = {through['rps'] / direct['rps']:.2f} |"
            )
    return rows


def cpu(result: dict, connections: int, *, through: bool = False) -> str:
    """CPU microseconds per request of each process, for the c=64 rows: what two cores can carry."""
    if connections != 64:
        return ""
    names = ("gateway", "upstream") if through else ("upstream",)
    parts = [f"{n} {us:.0f}" for n, us in zip(names, result["cpu_us"], strict=True)]
    parts.append(f"load generator {result['client_us']:.0f}")
    return f"; CPU µs/req: {', '.join(parts)}"


def write(section: str, rows: list[str], command: str, *, compared: bool = False) -> None:
    write_section(
        section,
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
            f"Python {platform.python_version()}). Command: `{command}`",
            "",
            *(rows[:2] if compared else ["| case | direct | through jaif | ratio |", "|---|---|---|---|"]),
            *(rows[2:] if compared else rows),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="gateway worker counts to try")
    parser.add_argument(
        "--database-url",
        default=None,
        help="jaif's database (default: SQLite in a temporary folder); a PostgreSQL database named here is "
        "created afresh, dropping one of that name, and dropped at the end",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/jaif_bench_gateway",
        help="metering on vs off on PostgreSQL as well, in this database (created afresh, dropping one of that "
        "name, and dropped at the end); '' to skip",
    )
    parser.add_argument(
        "--metering-only", action="store_true", help="only the metering on vs off rows; print them, write nothing"
    )
    parser.add_argument(
        "--pairs", type=int, default=10, help="alternating off/on measurements per metering row (medians are reported)"
    )
    parser.add_argument("--baseline", default=None, help="a checkout to compare with, side by side (bench/compare.py)")
    parser.add_argument("--granian", action="store_true", help="with --baseline: this checkout served by granian too")
    args = parser.parse_args()
    setup = Setup(database_url=args.database_url, token_quota=QUOTA)
    try:
        if args.baseline:
            rows = compare(setup, args, body)
        else:
            rows = measure(setup, args)
    finally:
        setup.cleanup()
    if args.baseline:
        print("\n".join(rows))
        write("gateway-compare", rows, "python bench/gateway.py " + " ".join(sys.argv[1:]), compared=True)
        return
    print("\n".join(rows))
    if args.metering_only:
        return
    write("gateway", rows, "python bench/gateway.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
