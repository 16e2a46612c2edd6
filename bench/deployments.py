"""Deployments (issue 12): cold start, scale-up, failures under scaling, routing cost; the local scheduler
and llama-cpp-python replicas of the built-in SmolLM2, as in tests/e2e/deployments/test_local.py.

    .venv/bin/python bench/deployments.py [--parts cold scaleup failures routing] [--runs 3]
        [--walltime 1] [--routing-requests 150] [--interval 1] [--no-write]

One throw-away set-up (SQLite, one project with an allocation on the local partition, a key) and one
`jaif serve` (its controller runs the replicas as local jobs, sandboxed as the project's account):

- cold: a deployment at zero replicas (min 0) gets a streaming request; time to its first token at the
  client, broken down by the controller's records: request sent -> replica submitted (its created_at),
  -> job running (the local job's started_at) -> replica ready (ready_at) -> first token at the client.
  Against the engine started directly (the llama_cpp.server argv the engine adapter renders, spawned
  here, polled until /v1/models answers, the same request): overhead = through jaif - direct. --runs
  times each, interleaved; medians. The request comes at a random point of the controller's interval
  (--interval: deployments.interval_s).
- scaleup: min 1, max 2, target-inflight 1: with the first replica ready, 4 streaming clients in a loop;
  time from the step to the second replica's first token served (its first usage record: replica
  column; start = created_at - latency, + ttft), with the scale decision and the replica's times.
- failures: 2 clients sending requests one after another (plain and streaming in turn) while (a) max
  is lowered 2 -> 1 with `jaif deployment scale`, (b) min 0 scales to zero when idle and a request
  after it is held and answered, (c) a replica with --walltime is handed over. Failed requests counted
  (a non-200, a broken connection, a stream without finish_reason).
- routing: sequential small requests (max_tokens 1, not streamed) to the replica straight (its node:port
  and key, the deployment model's upstream_key), through jaif, and through jaif to the same replica
  declared as a plain model (`jaif model add`), in turn; p50/p95 and differences.

Writes bench/RESULTS.md between the deployments markers (not with --no-write); keeps the server's log
in $TMPDIR/jaif-bench-deployments-serve.log. Every replica job is cancelled at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from harness import JAIF, free_port, write_section  # noqa: E402

from jaif.compute.local import LocalScheduler  # noqa: E402
from jaif.deployments.engines import Launch, LlamaCpp  # noqa: E402
from jaif.inference.backends.builtin import local_weights  # noqa: E402

SMOL = "smollm2-135m-instruct"
READY_S = 300.0  # a replica's start on a loaded 2-core machine
MESSAGES = [{"role": "user", "content": "Say hi"}]
SETTINGS = {  # the server's settings for the run (said in RESULTS.md)
    "JAIF_DEPLOYMENTS__INTERVAL_S": "1",  # the default; --interval
    "JAIF_DEPLOYMENTS__DRAIN_S": "1",  # default 10
    "JAIF_DEPLOYMENTS__SCALE_DOWN_WINDOW_S": "5",  # default 300
    "JAIF_METERING__FLUSH_INTERVAL_S": "0.2",  # default 0.5: usage records readable sooner
}


def ts(text: str | None) -> float | None:
    """Seconds since the epoch of a database or state-file time (UTC, naive in SQLite)."""
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class Bench:
    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings
        self.dir = Path(tempfile.mkdtemp(prefix="jaif-bench-deploy-"))
        self.dir.chmod(0o755)  # the replicas' accounts read their job directories below it
        self.db = self.dir / "jaif.db"
        self.jobs = self.dir / "jobs"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JAIF_")}
        self.env.update(
            JAIF_DATABASE_URL=f"sqlite:///{self.db}", JAIF_DATA_DIR=str(self.dir / "var"),
            JAIF_INFERENCE__BUILTIN_MODELS="false", JAIF_SCHEDULER="local", JAIF_COMPUTE__JOBS_DIR=str(self.jobs),
            JAIF_SLURM__SYNC_INTERVAL_S="0", JAIF_DEPLOYMENTS__COLD_START_TIMEOUT_S=str(int(READY_S)), **settings,
        )
        self.cli("db", "upgrade")
        self.cli("org", "create", "Bench", "--sector", "public", "--country", "DE")
        self.cli("project", "create", "inference", "--org", "Bench")
        self.cli("allocation", "create", "--project", "inference", "--days", "30", "--partition", "local",
                 "--gpu-hours", "10")
        self.key = self.cli("key", "create", "--project", "inference").strip().splitlines()[-1]
        self.base = ""
        self.log = self.dir / "serve.log"

    def cli(self, *args: str) -> str:
        done = subprocess.run([JAIF, *args], env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"jaif {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    @contextmanager
    def serve(self) -> Iterator[str]:
        port = free_port()
        with open(self.log, "a") as log:
            proc = subprocess.Popen([JAIF, "serve", "--port", str(port)], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        try:
            wait(lambda: _answers(self.base + "/healthz"), timeout=120, what="jaif serve")
            yield self.base
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def cleanup(self) -> None:
        """Cancel every replica job (they outlive the server by design), then remove the set-up."""
        local = LocalScheduler(self.jobs / ".local", gpus=4, isolation=None)  # type: ignore[arg-type]
        for path in (self.jobs / ".local" / "jobs").glob("*.json"):
            with suppress(Exception):
                local.cancel(path.stem)
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str, *args) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, args).fetchall()

    def replicas(self, name: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT r.* FROM deployment_replicas r JOIN deployments d ON d.id = r.deployment_id WHERE d.name = ? "
            "ORDER BY r.created_at", name)

    def events(self, name: str) -> list[tuple[float, str]]:
        rows = self.query("SELECT e.at, e.message FROM deployment_events e JOIN deployments d "
                          "ON d.id = e.deployment_id WHERE d.name = ? ORDER BY e.id", name)
        return [(ts(r["at"]), r["message"]) for r in rows]

    def job_started(self, job_id: str) -> float | None:
        state = json.loads((self.jobs / ".local" / "jobs" / f"{job_id}.json").read_text())
        return ts(state.get("started_at"))

    def create(self, name: str, *options: str) -> None:
        self.cli("deployment", "create", name, "--model", SMOL, "--engine", "llama-cpp", "--partition", "local",
                 "--gpus-per-replica", "0", "--project", "inference", *options)
        # the gateway knows the model (its registry refreshes) before it is asked
        wait(lambda: self.status(name) is not None, timeout=30, what=f"{name} in /v1/models")

    def status(self, name: str) -> dict | None:
        reply = httpx.get(f"{self.base}/v1/models/{name}", headers={"authorization": f"Bearer {self.key}"})
        return reply.json().get("status") if reply.status_code == 200 else None

    def ready(self, name: str, count: int = 1) -> list[sqlite3.Row]:
        wait(lambda: len([r for r in self.replicas(name) if r["state"] == "ready"]) >= count, timeout=READY_S,
             what=f"{count} ready replica(s) of {name}")
        return [r for r in self.replicas(name) if r["state"] == "ready"]

    def delete(self, name: str) -> None:
        self.cli("deployment", "delete", name)
        wait(lambda: not self.query("SELECT 1 FROM deployments WHERE name = ?", name), timeout=120,
             what=f"{name} deleted")


def _answers(url: str, headers: dict | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(done: Callable[[], bool], *, timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


def stream_chat(base_v1: str, key: str, model: str, *, max_tokens: int = 8, timeout: float = READY_S + 60) -> dict:
    """One streamed chat completion; wall times (epoch seconds) of sending, first token and end, and
    whether it finished (a finish_reason came)."""
    body = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    sent = time.time()
    first = None
    finished = False
    with httpx.Client(timeout=timeout) as http, http.stream(
        "POST", base_v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as reply:
        if reply.status_code != 200:
            return {"sent": sent, "error": f"{reply.status_code} {reply.read().decode()[:200]}"}
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.time()
                finished = finished or bool(choice.get("finish_reason"))
    return {"sent": sent, "first": first, "end": time.time(), "finished": finished}


class Clients:
    """``n`` clients sending chat completions one after another (plain and streamed in turn) until stopped;
    every outcome kept: "ok", or what went wrong."""

    def __init__(self, bench: Bench, model: str, n: int = 2) -> None:
        self.bench, self.model = bench, model
        self.outcomes: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(n)]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(READY_S + 120)

    def _loop(self, i: int) -> None:
        turn = i
        while not self.stopping.is_set():
            turn += 1
            self.outcomes.append((time.time(), self.one(stream=turn % 2 == 0)))

    def one(self, *, stream: bool) -> str:
        try:
            if stream:
                got = stream_chat(self.bench.base + "/v1", self.bench.key, self.model, max_tokens=4)
                return got.get("error") or ("ok" if got["finished"] else "stream ended without finish_reason")
            reply = httpx.post(self.bench.base + "/v1/chat/completions", timeout=READY_S + 60,
                               headers={"authorization": f"Bearer {self.bench.key}"},
                               json={"model": self.model, "messages": MESSAGES, "max_tokens": 4})
            if reply.status_code != 200:
                return f"{reply.status_code} {reply.text[:200]}"
            return "ok" if reply.json()["choices"][0]["message"]["content"] is not None else "no content"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    def failed(self) -> list[str]:
        return [o for _, o in self.outcomes if o != "ok"]

    def summary(self) -> str:
        failed = self.failed()
        return f"{len(self.outcomes)} requests, {len(failed)} failed" + (f" ({failed[:3]})" if failed else "")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- cold start ----------------------------------------------------------------------------------------


def direct_cold_start(bench: Bench) -> dict:
    """The engine alone: llama_cpp.server with the argv the engine adapter renders, spawned here."""
    port = free_port()
    launch = Launch(name="direct", model=str(local_weights("builtin:" + SMOL)), gpus=0, bind="127.0.0.1",
                    python=sys.executable)
    argv = [str(port) if a == '"$PORT"' else a for a in LlamaCpp().argv(launch)]
    key = "direct-key"
    env = {**{k: v for k, v in bench.env.items() if not k.startswith("JAIF_")}, "API_KEY": key}
    started = time.time()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait(lambda: _answers(base + "/v1/models", {"authorization": f"Bearer {key}"}), timeout=READY_S,
             what="the engine", every=0.05)
        ready = time.time()
        got = stream_chat(base + "/v1", key, "direct")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return {"ready": ready - started, "first_token": got["first"] - ready, "total": got["first"] - started}


def jaif_cold_start(bench: Bench, name: str) -> dict:
    bench.create(name, "--min-replicas", "0", "--max-replicas", "1", "--idle-minutes", "30", "--walltime", "60")
    assert bench.status(name)["state"] == "cold", bench.status(name)
    # The gateway learns of the deployment right after a controller tick: without this pause the request
    # would come at the same point of the controller's interval every time (just after a tick).
    time.sleep(random.uniform(0, float(bench.settings["JAIF_DEPLOYMENTS__INTERVAL_S"])))
    got = stream_chat(bench.base + "/v1", bench.key, name)
    if got.get("error") or not got["finished"]:
        raise RuntimeError(f"cold start request failed: {got}")
    replica = bench.replicas(name)[0]
    submitted, ready = ts(replica["created_at"]), ts(replica["ready_at"])
    running = bench.job_started(replica["job_id"])
    decided = next(at for at, message in bench.events(name) if message.startswith("scale up 0 -> 1"))
    bench.delete(name)
    return {"decided": decided - got["sent"], "submission": submitted - got["sent"], "queueing": running - submitted,
            "engine": ready - running, "first_token": got["first"] - ready, "total": got["first"] - got["sent"]}


def cold(bench: Bench, runs: int) -> list[str]:
    direct, through = [], []
    for i in range(runs):
        direct.append(direct_cold_start(bench))
        through.append(jaif_cold_start(bench, f"cold{i}"))
        print(f"cold start {i + 1}: direct {direct[-1]}, jaif {through[-1]}", flush=True)
    m = {k: median([r[k] for r in through]) for k in through[0]}
    d = {k: median([r[k] for r in direct]) for k in direct[0]}
    overheads = [t["total"] - e["total"] for t, e in zip(through, direct, strict=True)]
    # jaif's own share, without the engine's first answer (seconds of prompt evaluation on a loaded CPU):
    # submission, the job's start, and the engine's start in the job against the same start here
    own = [t["submission"] + t["queueing"] + t["engine"] - e["ready"] for t, e in zip(through, direct, strict=True)]
    each = ", ".join(f"{o:.2f}" for o in overheads)
    return [
        f"| cold start: request at zero replicas -> first token (stream), {runs} runs, medians | "
        f"engine spawned here: -> answers {d['ready']:.2f} s -> first token {d['first_token']:.2f} s; "
        f"**total {d['total']:.2f} s** | request -> replica submitted {m['submission']:.2f} s (scale-up decision "
        f"at {m['decided']:.2f} s) -> job running +{m['queueing']:.2f} s -> ready (engine start, model load) "
        f"+{m['engine']:.2f} s -> first token at the client +{m['first_token']:.2f} s; **total {m['total']:.2f} s** | "
        f"**overhead {median(overheads):.2f} s** (runs: {each} s; target ≤ 2 s); jaif/direct = "
        f"{m['total'] / d['total']:.2f}. Without the engine's first answer (submission + job start + engine "
        f"start in the job - engine start here): {median(own):.2f} s |",
    ]


# -- scale-up ------------------------------------------------------------------------------------------


def scaleup(bench: Bench, clients: int = 4) -> list[str]:
    name = "burst"
    bench.create(name, "--min-replicas", "1", "--max-replicas", "2", "--target-inflight", "1", "--walltime", "60")
    first = bench.ready(name)[0]
    url = f"http://{first['node']}:{first['port']}/v1"
    # the gateway routes to it (not held) before the step
    assert stream_chat(bench.base + "/v1", bench.key, name)["finished"]
    time.sleep(2)
    step = time.time()
    with Clients(bench, name, clients) as load:
        second = None

        def served() -> bool:
            nonlocal second
            rows = bench.query("SELECT u.created_at, u.latency_ms, u.ttft_ms, u.replica FROM usage_records u "
                               "WHERE u.model = ? AND u.replica IS NOT NULL AND u.replica != ? "
                               "ORDER BY u.created_at", name, url)
            second = rows[0] if rows else None
            return second is not None

        wait(served, timeout=READY_S, what="the second replica's first usage record", every=0.5)
    rep = [r for r in bench.replicas(name) if r["job_id"] != first["job_id"]][0]
    end = ts(second["created_at"])
    began = end - second["latency_ms"] / 1000
    token = began + (second["ttft_ms"] or second["latency_ms"]) / 1000
    decided = next(at for at, message in bench.events(name) if message.startswith("scale up 1 -> 2"))
    submitted, ready, running = ts(rep["created_at"]), ts(rep["ready_at"]), bench.job_started(rep["job_id"])
    print(f"scale-up: step {step}, decided {decided}, submitted {submitted}, running {running}, ready {ready}, "
          f"first request began {began}, first token {token}; {load.summary()}", flush=True)
    bench.delete(name)
    return [
        f"| scale-up: min 1, max 2, target-inflight 1; step to {clients} streaming clients in a loop | — | "
        f"step -> scale up 1 -> 2 decided {decided - step:.2f} s -> submitted {submitted - step:.2f} s -> "
        f"job running {running - step:.2f} s -> ready {ready - step:.2f} s -> its first request routed "
        f"{began - step:.2f} s, first token {token - step:.2f} s (ready -> routed {began - ready:.2f} s) | "
        f"**step -> second replica serving {token - step:.2f} s**; load meanwhile: {load.summary()} |",
    ]


# -- failures ------------------------------------------------------------------------------------------


def scale_down(bench: Bench) -> str:
    name = "shrink"
    bench.create(name, "--min-replicas", "2", "--max-replicas", "2", "--target-inflight", "1", "--walltime", "60")
    first = {r["id"] for r in bench.ready(name, 2)}
    with Clients(bench, name) as load:
        time.sleep(3)
        asked = time.time()
        bench.cli("deployment", "scale", name, "--min", "1", "--max", "1")
        wait(lambda: any(r["state"] == "ended" for r in bench.replicas(name)), timeout=120, what="a replica ended")
        ended = [r for r in bench.replicas(name) if r["state"] == "ended"][0]
        time.sleep(3)
    assert ended["id"] in first
    print(f"scale-down: ended {ended['reason']} after {ts(ended['ended_at']) - asked:.2f} s; {load.summary()}")
    bench.delete(name)
    return (f"| (a) scale-down: min 2 max 2 -> `jaif deployment scale --min 1 --max 1` under 2 clients | — | "
            f"a replica drained and ended {ts(ended['ended_at']) - asked:.1f} s after the command "
            f"({ended['reason']}) | {load.summary()} |")


def scale_to_zero(bench: Bench) -> str:
    name = "idle"
    bench.create(name, "--min-replicas", "0", "--max-replicas", "1", "--idle-minutes", "0.1", "--walltime", "60")
    with Clients(bench, name) as load:  # starts cold: the first requests are held
        wait(lambda: len(load.outcomes) >= 6, timeout=READY_S, what="requests answered")
    stopped = time.time()
    wait(lambda: any(r["state"] == "ended" for r in bench.replicas(name))
         and not any(r["state"] in ("pending", "starting", "ready", "draining") for r in bench.replicas(name)),
         timeout=120, what="scale to zero")
    zero = next(at for at, message in bench.events(name) if message.startswith("scale to zero"))
    ended = ts(bench.replicas(name)[0]["ended_at"])
    got = stream_chat(bench.base + "/v1", bench.key, name)  # held: a cold start again
    resumed = got.get("error") or ("ok" if got["finished"] else "stream ended without finish_reason")
    with Clients(bench, name) as after:
        time.sleep(3)
    total = [o for _, o in load.outcomes] + [resumed] + [o for _, o in after.outcomes]
    failed = [o for o in total if o != "ok"]
    print(f"scale to zero: decided {zero - stopped:.2f} s after the last request, ended {ended - stopped:.2f} s; "
          f"resumed {got}; {len(total)} requests, failed {failed}", flush=True)
    bench.delete(name)
    held = (got.get("first") or float("nan")) - got["sent"]
    return (f"| (b) scale to zero: min 0, --idle-minutes 0.1 (6 s); 2 clients from cold, stop, resume | — | "
            f"scaled to zero {zero - stopped:.1f} s after the last request (replica ended "
            f"{ended - stopped:.1f} s); the resumed stream held and answered, first token after {held:.1f} s | "
            f"{len(total)} requests, {len(failed)} failed" + (f" ({failed[:3]})" if failed else "") + " |")


def handover(bench: Bench, walltime: int) -> str:
    name = "short"
    bench.create(name, "--min-replicas", "1", "--max-replicas", "1", "--walltime", str(walltime))
    first = bench.ready(name)[0]
    with Clients(bench, name) as load:
        wait(lambda: any(r["state"] == "ended" and r["id"] == first["id"] for r in bench.replicas(name)),
             timeout=walltime * 60 + READY_S, what="the first replica handed over")
        time.sleep(3)
    reps = bench.replicas(name)
    old = next(r for r in reps if r["id"] == first["id"])
    new = next(r for r in reps if r["id"] != first["id"] and r["ready_at"])
    started = bench.job_started(old["job_id"])
    limit = started + walltime * 60
    print(f"handover: old {dict(old)}, new {dict(new)}; {load.summary()}", flush=True)
    bench.delete(name)
    return (f"| (c) walltime handover: --walltime {walltime} (limit {walltime * 60} s, successor submitted "
            f"{limit - ts(new['created_at']):.1f} s before it) under 2 clients | — | successor ready "
            f"{limit - ts(new['ready_at']):.1f} s before the limit; the old replica {old['reason']} and ended "
            f"{limit - ts(old['ended_at']):.1f} s before it | {load.summary()} |")


def failures(bench: Bench, walltime: int) -> list[str]:
    return [scale_down(bench), scale_to_zero(bench), handover(bench, walltime)]


# -- routing cost --------------------------------------------------------------------------------------


def routing(bench: Bench, requests: int) -> list[str]:
    """The replica straight, the deployment through jaif, and (to tell the deployment's own share) the same
    replica declared as a plain upstream model with `jaif model add`: in turn, one request each."""
    name = "route"
    bench.create(name, "--min-replicas", "1", "--max-replicas", "1", "--walltime", "60")
    replica = bench.ready(name)[0]
    upstream_key = bench.query("SELECT upstream_key FROM models WHERE name = ?", name)[0]["upstream_key"]
    root = f"http://{replica['node']}:{replica['port']}/v1"
    bench.cli("model", "add", "plain", "--upstream", root, "--upstream-model", name, "--upstream-key", upstream_key)
    body = {"messages": MESSAGES, "max_tokens": 1}
    ways = {  # kind: (URL, key, model)
        "direct": (root + "/chat/completions", upstream_key, name),
        "jaif": (bench.base + "/v1/chat/completions", bench.key, name),
        "plain": (bench.base + "/v1/chat/completions", bench.key, "plain"),
    }
    times: dict[str, list[float]] = {kind: [] for kind in ways}
    with httpx.Client(timeout=60) as http:

        def ask(kind: str) -> float:
            url, key, model = ways[kind]
            began = time.perf_counter()
            reply = http.post(url, json={**body, "model": model}, headers={"authorization": f"Bearer {key}"})
            took = (time.perf_counter() - began) * 1000
            if reply.status_code != 200:
                raise RuntimeError(f"{kind}: {reply.status_code} {reply.text[:200]}")
            return took

        # routed (not held), the plain model in the gateway's registry, connections warm
        wait(lambda: _answers(bench.base + "/v1/models/plain", {"authorization": f"Bearer {bench.key}"}),
             timeout=30, what="the plain model")
        for kind in [*ways] * 5:
            ask(kind)
        for _ in range(requests):
            for kind in ways:
                times[kind].append(ask(kind))
    bench.delete(name)
    p = {kind: (pct(v, 0.5), pct(v, 0.95)) for kind, v in times.items()}
    print(f"routing: {p}", flush=True)
    (d50, d95), (j50, j95), (m50, m95) = p["direct"], p["jaif"], p["plain"]
    return [
        f"| routing cost: {requests} small requests each way (max_tokens 1, not streamed), sequential, in turn "
        f"| replica straight: p50 {d50:.2f} ms, p95 {d95:.2f} ms | deployment through jaif: p50 {j50:.2f} ms, "
        f"p95 {j95:.2f} ms; the same replica as a plain `jaif model add` model: p50 {m50:.2f} ms, p95 {m95:.2f} ms "
        f"| **added at p50 {j50 - d50:.2f} ms** (target ≤ 1 ms; plain model: {m50 - d50:.2f} ms), "
        f"jaif/direct at p50 = {j50 / d50:.2f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=["cold", "scaleup", "failures", "routing"],
                        default=["cold", "scaleup", "failures", "routing"])
    parser.add_argument("--runs", type=int, default=3, help="cold starts, each direct and through jaif")
    parser.add_argument("--walltime", type=int, default=1, help="minutes; the handover comes at half of it")
    parser.add_argument("--routing-requests", type=int, default=150)
    parser.add_argument("--interval", type=float, default=1.0, help="deployments.interval_s (the default: 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    load_before = os.getloadavg()
    settings = {**SETTINGS, "JAIF_DEPLOYMENTS__INTERVAL_S": f"{args.interval:g}"}
    bench = Bench(settings)
    rows: list[str] = []
    try:
        with bench.serve():
            if "cold" in args.parts:
                rows += cold(bench, args.runs)
            if "scaleup" in args.parts:
                rows += scaleup(bench)
            if "failures" in args.parts:
                rows += failures(bench, args.walltime)
            if "routing" in args.parts:
                rows += routing(bench, args.routing_requests)
    finally:
        log = bench.log.read_text() if bench.log.exists() else ""
        kept = Path(tempfile.gettempdir()) / "jaif-bench-deployments-serve.log"
        kept.write_text(log)
        print(f"server log: {kept}", file=sys.stderr)
        bench.cleanup()
    print("\n".join(rows))
    if args.no_write:
        return
    command = "python bench/deployments.py " + " ".join(sys.argv[1:])
    settings = ", ".join(f"`{k.removeprefix('JAIF_').lower()}={v}`" for k, v in settings.items())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    errors = sum(" ERROR " in line or "Traceback" in line for line in log.splitlines())
    probes = sum("failed its health check" in line for line in log.splitlines())
    write_section("deployments", [
        "## Deployments: cold start, scale-up, failures, routing cost (`bench/deployments.py`)",
        "",
        f"Measured {when} on {platform.node()} ({os.cpu_count()} cores, shared; Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after). Command: `{command.strip()}`. "
        f"Local scheduler (replicas sandboxed with bubblewrap as the project's account), llama-cpp-python's "
        f"server with the built-in SmolLM2 (CPU), SQLite, one `jaif serve`. Settings: {settings}; the rest "
        f"default (hold_refresh_s 0.25, report_interval_s 1, scale_up_window_s 10, handover at half the "
        f"walltime). Server log: {errors} error line(s), {probes} replica(s) taken out by the "
        f"gateway's health check.",
        "",
        "| case | direct | through jaif | result |",
        "|---|---|---|---|",
        *rows,
    ])


if __name__ == "__main__":
    main()
