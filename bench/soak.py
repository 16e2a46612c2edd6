"""Soak: a real `jaif serve` under steady mixed load for minutes, on SQLite and on PostgreSQL; does
its memory stay flat?

    .venv/bin/python bench/soak.py [--minutes 10] [--db sqlite|postgres|both] [--concurrency 8]
        [--postgres-url URL] [--src DIR] [--label TEXT]

For each database: a fresh database (bench/harness.py's Setup, a project with a token quota so that
every request takes the lease, reserve and settle path), the stand-in upstream (jaif.testing.upstream,
5 ms per answer) and one `jaif serve` (one worker). ``--concurrency`` clients then loop for
``--minutes`` over a mix: chat (plain and streaming with usage), legacy completions, embeddings, and
now and then a bad request (an unknown model or a negative max_tokens: a 4xx is the right answer).
Every 10 s the resident memory (RSS) of the server's processes is sampled; the report gives RSS at
1 minute and at the end, the growth after the first minute (the issue 11 target: at most 10 MB over
10 minutes on both databases), the highest sample, requests per kind and the errors: an answer other
than 200 to a good request, other than 4xx to a bad one, or a failed connection. At the end the usage
records are counted against the requests answered.

``--src DIR``: serve another checkout's code (DIR's src/ first on the path), e.g. main's, to measure
before and after a change with this one script. The figures go into bench/RESULTS.md between the soak
markers (``--label`` names the code measured). Load generator, upstream and gateway share this
machine's cores: the request rate is what was left over; the memory figures are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from harness import JAIF, RESULTS, Setup, free_port, process, upstream, write_section  # noqa: E402

QUOTA = 10**15  # a quota it never runs out of: the lease path on every request
SAMPLE_S = 10.0
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/jaif_soak"
MIX = (  # (kind, weight)
    ("chat", 35),
    ("chat-stream", 30),
    ("completions", 15),
    ("embeddings", 15),
    ("bad", 5),
)


@dataclass
class Tally:
    done: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    answered: int = 0  # requests that should have left a usage record (good ones answered 200)

    def count(self, kind: str, ok: bool) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1
        if not ok:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its child processes (uvicorn's workers), in MB (10^6 bytes)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024 / 1e6
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(rss_mb(int(child)) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        pass
    return total


def request(kind: str, rng: random.Random) -> tuple[str, dict, bool]:
    """(path, body, whether the request is good) for one request of ``kind``."""
    words = " ".join(rng.choice(("Jülich", "soak", "memory", "gateway", "token")) for _ in range(rng.randint(1, 40)))
    max_tokens = rng.randint(1, 16)
    if kind == "chat":
        return "/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": words}],
                                     "max_tokens": max_tokens}, True  # fmt: skip
    if kind == "chat-stream":
        return "/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": words}],
                                     "max_tokens": max_tokens, "stream": True,
                                     "stream_options": {"include_usage": True}}, True  # fmt: skip
    if kind == "completions":
        return "/completions", {"model": "chat", "prompt": words, "max_tokens": max_tokens}, True
    if kind == "embeddings":
        return "/embeddings", {"model": "embed", "input": [words] * rng.randint(1, 4)}, True
    if rng.random() < 0.5:
        return "/chat/completions", {"model": "no-such-model", "messages": [{"role": "user", "content": words}]}, False
    return "/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": words}],
                                 "max_tokens": -1}, False  # fmt: skip


async def load(base: str, key: str, *, concurrency: int, seconds: float, tally: Tally) -> None:
    kinds, weights = zip(*MIX, strict=True)
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                path, body, good = request(kind, rng)
                try:
                    async with session.post(base + path, json=body) as response:
                        await response.read()
                        ok = response.status == 200 if good else 400 <= response.status < 500
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                tally.count(kind, ok)
                if good and ok:
                    tally.answered += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))


def soak(database: str, args) -> list[str]:
    setup = Setup(database_url=args.postgres_url if database == "PostgreSQL" else None, token_quota=QUOTA)
    try:
        env = setup.env
        with upstream(env, delay_ms=5) as up:
            setup.cli("model", "add", "chat", "--upstream", up)
            setup.cli("model", "add", "embed", "--upstream", up, "--kind", "embedding")
            port = free_port()
            server_env = {**env, "PYTHONPATH": args.src} if args.src else env
            argv = [JAIF, "serve", "--port", str(port), "--workers", "1"]
            with process(argv, server_env, f"http://127.0.0.1:{port}/healthz") as proc:
                samples = asyncio.run(run(f"http://127.0.0.1:{port}/v1", setup.key, proc, args, database))
        records = setup.usage()["requests"]
    finally:
        setup.cleanup()
    return [report(database, samples, records, args)]


async def run(base: str, key: str, proc: subprocess.Popen, args, database: str) -> dict:
    tally = Tally()
    seconds = args.minutes * 60
    samples: list[tuple[float, float]] = [(0.0, rss_mb(proc.pid))]
    started = time.monotonic()
    work = asyncio.create_task(load(base, key, concurrency=args.concurrency, seconds=seconds, tally=tally))
    while not work.done():
        await asyncio.wait([work], timeout=SAMPLE_S)
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_mb(proc.pid)))
        print(f"{database}: {elapsed:5.0f} s RSS {samples[-1][1]:6.1f} MB, {sum(tally.done.values())} requests, "
              f"{sum(tally.errors.values())} errors", flush=True)  # fmt: skip
    await work
    return {"samples": samples, "tally": tally, "seconds": time.monotonic() - started}


def report(database: str, result: dict, records: int, args) -> str:
    samples, tally = result["samples"], result["tally"]
    at_1 = next(rss for t, rss in samples if t >= 60.0) if samples[-1][0] >= 60 else samples[-1][1]
    end = samples[-1][1]
    total = sum(tally.done.values())
    kinds = ", ".join(f"{kind} {tally.done.get(kind, 0)}" for kind, _ in MIX)
    errors = ", ".join(f"{k} {n}" for k, n in tally.errors.items()) or "none"
    row = (
        f"| {args.label} | {database} | {args.minutes:g} min, c={args.concurrency} | start {samples[0][1]:.1f} MB, "
        f"1 min {at_1:.1f} MB, end {end:.1f} MB, highest {max(rss for _, rss in samples):.1f} MB "
        f"| **{end - at_1:+.1f} MB** | {total} ({total / result['seconds']:.0f}/s: {kinds}) | {errors} "
        f"| {records} of {tally.answered} |"
    )
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres-url", default=os.environ.get("JAIF_BENCH_POSTGRES_URL", POSTGRES_URL),
                        help="a database of this name is created afresh and dropped afterwards")  # fmt: skip
    parser.add_argument("--src", help="serve the code of this src/ folder (another checkout's) instead")
    parser.add_argument("--label", default="this checkout", help="what the figures are of (RESULTS.md)")
    args = parser.parse_args()
    databases = {"sqlite": ["SQLite"], "postgres": ["PostgreSQL"], "both": ["SQLite", "PostgreSQL"]}[args.db]
    rows = [row for database in databases for row in soak(database, args)]
    command = "python bench/soak.py " + shlex.join(sys.argv[1:])
    runs = [line for line in earlier_runs() if not line.startswith(f"- `{args.label}`:")]
    runs.append(
        f"- `{args.label}`: `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs (shared), load average {os.getloadavg()[0]:.1f} at the end."
    )
    kept = [row for row in earlier_rows() if not row.startswith(f"| {args.label} |")]
    write_section(
        "soak",
        [
            "## Soak: memory under mixed load (`bench/soak.py`)",
            "",
            "RSS of the `jaif serve` process (one worker), sampled every 10 s; growth is the end minus 1 minute "
            "(issue 11's target: at most 10 MB over 10 minutes, on both databases). Errors: a good request not "
            "answered 200, a bad one not answered 4xx, a failed connection. Usage records: written of the good "
            "requests answered. A run of another label stays in the table until that label runs again.",
            "",
            *runs,
            "",
            "| code | database | run | RSS | growth after 1 min | requests | errors | usage records |",
            "|---|---|---|---|---|---|---|---|",
            *kept,
            *rows,
        ],
    )


def _section() -> list[str]:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    return text[text.index(start) : text.index(end)].splitlines() if start in text else []


def earlier_runs() -> list[str]:
    """The runs (labels and commands) already in RESULTS.md's soak section."""
    return [line for line in _section() if line.startswith("- `")]


def earlier_rows() -> list[str]:
    """The table rows already in RESULTS.md's soak section (of every label)."""
    return [line for line in _section() if line.startswith("| ") and not line.startswith("| code |")]


if __name__ == "__main__":
    main()
