"""Does one huge request stall the server? Latency of /healthz and of a small chat request to another
model while huge chat requests to the built-in model are in flight, one after another.

    .venv/bin/python bench/stall.py [--duration 5]

Cases: 15,000 short messages (~660 KB, as in issue 9: refused by the message limit) and 2,048 messages
(the default limit: allowed, so counted, then refused as too long for the context). For each, for
--duration seconds the huge request is sent again as soon as it is answered, while this process probes
/healthz and a one-message chat to a stand-in upstream model, one after another. Writes the figures
into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from harness import Setup, gateway, upstream, write_section  # noqa: E402

SMOL = "smollm2-135m-instruct"


def messages(n: int) -> list[dict]:
    # ~44 bytes of JSON each: 15,000 of them make the 660 KB request of issue 9.
    return [{"role": "user", "content": f"msg {i} lorem ipsum dolor"} for i in range(n)]


def measure(base: str, key: str, count: int, duration: float) -> dict:
    headers = {"authorization": f"Bearer {key}"}
    stop = threading.Event()
    huge: list[tuple[float, int]] = []

    def flood() -> None:
        # Encoded once: encoding it per request would hold this process's GIL, and the probes' timing, up.
        body = json.dumps({"model": SMOL, "messages": messages(count)}).encode()
        with httpx.Client(base_url=base, headers={**headers, "content-type": "application/json"},
                          timeout=300) as http:
            while not stop.is_set():
                started = time.perf_counter()
                status = http.post("/chat/completions", content=body).status_code
                huge.append((time.perf_counter() - started, status))

    worker = threading.Thread(target=flood)
    worker.start()
    time.sleep(0.2)
    health, chat = [], []
    root = base.removesuffix("/v1")
    small = {"model": "other", "messages": messages(1), "max_tokens": 4}
    with httpx.Client(headers=headers, timeout=300) as http:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline or not huge:
            t = time.perf_counter()
            http.get(root + "/healthz").raise_for_status()
            health.append(time.perf_counter() - t)
            t = time.perf_counter()
            http.post(base + "/chat/completions", json=small).raise_for_status()
            chat.append(time.perf_counter() - t)
            time.sleep(0.01)
    stop.set()
    worker.join()
    return {"huge": huge, "healthz": health, "chat": chat}


def ms(values: list[float], q: float) -> str:
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f}"


def row(label: str, m: dict) -> str:
    huge = [d for d, _ in m["huge"]]
    statuses = sorted({s for _, s in m["huge"]})
    return (f"| {label} | {len(huge)} × {statistics.median(huge) * 1000:.0f} ms (status {statuses}) "
            f"| {len(m['healthz'])}: median {ms(m['healthz'], 0.5)}, p99 {ms(m['healthz'], 0.99)}, "
            f"max {ms(m['healthz'], 1.0)} ms "
            f"| {len(m['chat'])}: median {ms(m['chat'], 0.5)}, p99 {ms(m['chat'], 0.99)}, "
            f"max {ms(m['chat'], 1.0)} ms |")


def write(rows: list[str], command: str) -> None:
    write_section("stall", [
        "## One huge request in flight (`bench/stall.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}). Command: `{command}`",
        "",
        "| huge request to the built-in model, sent again and again | its answers | /healthz meanwhile "
        "| small chat to another model meanwhile |",
        "|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of probing per case")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    setup = Setup(builtin=True)
    rows = []
    try:
        with upstream(setup.env) as url:
            setup.cli("model", "add", "other", "--upstream", url)
            with gateway(setup.env) as base:
                with httpx.Client(base_url=base, headers={"authorization": f"Bearer {setup.key}"}, timeout=300) as h:
                    # Loads the built-in model (until then prompts are counted only in its own thread).
                    h.post("/chat/completions", json={"model": SMOL, "messages": messages(1), "max_tokens": 1})
                for label, count in (("15,000 messages (~660 KB)", 15_000), ("2,048 messages (~90 KB)", 2_048)):
                    rows.append(row(label, measure(base, setup.key, count, args.duration)))
                    print(rows[-1], flush=True)
    finally:
        setup.cleanup()
    if not args.no_write:
        write(rows, "python bench/stall.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
