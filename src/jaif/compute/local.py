"""The ``local`` executor: jobs as local processes, for one machine without Slurm. Not a scheduler.

Each job gets a supervisor process (``python -m jaif.compute.local STATE_FILE``, in a session of its
own, so it outlives the command that submitted it). The supervisor waits until it holds as many GPU
slots as the job asks for (an flock on ``slots/gpuN`` each; the job sees them as
``CUDA_VISIBLE_DEVICES``), runs the batch script with bash in the job's working directory with stdout
and stderr to its log files, kills it at its time limit, and records the outcome in the job's state
file (JSON, replaced atomically). Cancel sends the supervisor SIGTERM; it kills the job's process group.

The job runs as its project's account, in a clean environment, under Linux limits and, where it works,
in a bubblewrap sandbox, as isolation.py plans it; the supervisor (jaif's account) only starts it. The
state files (under ``.local``, mode 0700) are the server's alone.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from jaif.compute import isolation
from jaif.compute.models import JobState
from jaif.compute.scheduler import AccountingEntry, JobRequest, JobStatus, PartitionInfo
from jaif.errors import NotFound

# The job's own shell: its output to its log files, opened as the job's account (never by the server).
WRAPPER = 'exec >>"$1" 2>>"$2" </dev/null; shift 2; exec bash "$@"'

POLL_S = 0.2


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _write(path: Path, state: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _alive(pid: int | None, *, marked: bool = True) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``marked``, is a supervisor (a process just forked for
    one may not show it yet: it registers itself once it runs)."""
    if not pid:
        return False
    try:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return False
        return not marked or b"jaif.compute.local" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False


def _supervised(state: dict) -> bool:
    if "supervisor" in state:
        return _alive(state["supervisor"])
    return _alive(state.get("spawned"), marked=False)


class LocalScheduler:
    """Jobs under ``root`` (``compute.jobs_dir``/.local): a state file per job, slot files, a job counter."""

    kind = "local"
    cluster = "local"

    def __init__(self, root: Path, *, gpus: int, isolation: isolation.Isolation, minute_s: float = 60.0,
                 max_processes: int = 512) -> None:
        self.root = root
        self.gpus = gpus
        self.isolation = isolation
        self.minute_s = minute_s  # the length of a minute of time limit (tests shorten it)
        self.max_processes = max_processes

    def _state_file(self, job_id: str) -> Path:
        if not job_id.isdigit():
            raise NotFound(f"no job {job_id!r}", param="job_id")
        return self.root / "jobs" / f"{job_id}.json"

    def _next_id(self) -> str:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)  # the state of every job: the server's alone
        with open(self.root / "counter", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            number = int(f.read().strip() or 0) + 1
            f.seek(0)
            f.truncate()
            f.write(str(number))
        return str(number)

    def partitions(self) -> list[PartitionInfo] | None:
        return None  # the site profile describes the local partition

    def submit(self, request: JobRequest) -> str:
        plan = request.isolation or self.isolation.plan(request.account)
        job_id = self._next_id()
        path = self._state_file(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        time_limit_s = request.time_limit_min * self.minute_s
        cpus = request.cpus or os.cpu_count() or 1
        state = {
            "job_id": job_id, "name": request.name, "account": request.account, "partition": request.partition,
            "user": plan.user, "nodes": request.nodes, "gpus": request.nodes * request.gpus_per_node,
            "time_limit_min": request.time_limit_min, "time_limit_s": time_limit_s,
            "script": str(request.script), "workdir": str(request.workdir),
            "stdout": str(request.stdout), "stderr": str(request.stderr), "environment": request.environment,
            "isolation": plan.as_state(),
            "limits": {"cpu_s": math.ceil(time_limit_s * cpus) + 10, "processes": self.max_processes,
                       "memory_bytes": request.memory_mb * 2**20 if request.memory_mb else None},
            "slots": self.gpus, "state": JobState.pending, "reason": "Resources", "submitted_at": _now(),
        }
        _write(path, state)
        proc = subprocess.Popen(
            [sys.executable, "-m", "jaif.compute.local", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        _update(path, spawned=proc.pid)
        return job_id

    def cancel(self, job_id: str) -> None:
        path = self._state_file(job_id)
        if not path.exists():
            raise NotFound(f"no job {job_id!r}", param="job_id")
        # Under the state file's lock: a supervisor that registers after this sees the request.
        state = _update(path, unless_finished=True, cancel_requested=True)
        if JobState(state["state"]).finished:
            return
        if _alive(state.get("supervisor")):
            os.kill(state["supervisor"], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not JobState(json.loads(path.read_text())["state"]).finished:
                time.sleep(0.05)
        else:
            _update(path, unless_finished=True, state=JobState.cancelled, reason="cancelled", ended_at=_now())

    def _read(self, job_id: str) -> dict | None:
        try:
            state = json.loads(self._state_file(job_id).read_text())
        except (OSError, ValueError, NotFound):
            return None
        if not JobState(state["state"]).finished and not _supervised(state):
            # The supervisor died (machine restarted, killed): the job is gone with it.
            state = _update(
                self._state_file(job_id), unless_finished=True, state=JobState.failed,
                reason="the local executor stopped", ended_at=_now(),
            )
        return state

    def status(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        found = {}
        for job_id in job_ids:
            state = self._read(job_id)
            if state is not None:
                found[job_id] = JobStatus(
                    job_id=job_id, state=JobState(state["state"]), reason=state.get("reason", ""),
                    started_at=_when(state.get("started_at")), ended_at=_when(state.get("ended_at")),
                    exit_code=state.get("exit_code"),
                )
        return found

    def accounting(self, *, since: datetime) -> Iterable[AccountingEntry]:
        jobs = self.root / "jobs"
        if not jobs.exists():
            return
        for path in sorted(jobs.glob("*.json"), key=lambda p: int(p.stem)):
            state = self._read(path.stem)
            if state is None or not JobState(state["state"]).finished:
                continue
            ended = _when(state.get("ended_at")) or datetime.now(UTC)
            if ended < since:
                continue
            started = _when(state.get("started_at"))
            yield AccountingEntry(
                cluster=self.cluster, job_id=state["job_id"], name=state["name"], user=state["user"],
                account=state["account"], partition=state["partition"], state=JobState(state["state"]),
                submitted_at=_when(state.get("submitted_at")), started_at=started, ended_at=ended,
                elapsed_s=int((ended - started).total_seconds()) if started else 0,
                nodes=state["nodes"], gpus=state["gpus"],
            )


def _update(path: Path, *, unless_finished: bool = False, **changes) -> dict:
    """Change the state file under its lock (submitter, supervisor and cancel all write it)."""
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text())
        if not (unless_finished and JobState(state["state"]).finished):
            state.update(changes)
            _write(path, state)
        return state


# -- the supervisor (python -m jaif.compute.local STATE_FILE) ---------------------------------------


def _take_slots(slot_dir: Path, total: int, wanted: int) -> list[tuple[int, IO[str]]] | None:
    held: list[tuple[int, IO[str]]] = []
    for slot in range(total):
        if len(held) == wanted:
            break
        f = open(slot_dir / f"gpu{slot}", "a")  # noqa: SIM115 - held open as the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append((slot, f))
        except BlockingIOError:
            f.close()
    if len(held) == wanted:
        return held
    for _slot, lock in held:
        lock.close()
    return None


def supervise(path: Path) -> None:
    stop: dict[str, str | None] = {"signal": None}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(signal="cancelled"))
    state = _update(path, unless_finished=True, supervisor=os.getpid())
    if JobState(state["state"]).finished:
        return
    if state.get("cancel_requested"):  # cancelled before the supervisor started
        _update(path, state=JobState.cancelled, reason="cancelled while pending", ended_at=_now())
        return
    slot_dir = path.parent.parent / "slots"
    slot_dir.mkdir(parents=True, exist_ok=True)
    held = _take_slots(slot_dir, state["slots"], state["gpus"])
    while held is None and stop["signal"] is None:
        time.sleep(POLL_S)
        held = _take_slots(slot_dir, state["slots"], state["gpus"])
    if stop["signal"] is not None or held is None:  # held is None only when a signal stopped the wait
        _update(path, state=JobState.cancelled, reason="cancelled while pending", ended_at=_now())
        return
    try:
        with open(path.with_suffix(".launch"), "ab") as launch:  # what bwrap or setpriv say, if they fail
            child = _start(state, [slot for slot, _f in held], launch)
    except OSError as exc:
        _update(path, state=JobState.failed, reason=f"could not start: {exc}"[:200], ended_at=_now())
        return
    _update(path, state=JobState.running, reason="", started_at=_now(), pid=child.pid)
    deadline = time.monotonic() + state["time_limit_s"]
    while child.poll() is None:
        if stop["signal"] is None and time.monotonic() > deadline:
            stop["signal"] = "timeout"
        if stop["signal"] is not None:
            _kill_group(child)
            break
        time.sleep(POLL_S)
    code = child.wait()
    outcome = {"cancelled": JobState.cancelled, "timeout": JobState.timeout}.get(stop["signal"] or "")
    if outcome is None:
        outcome = JobState.completed if code == 0 else JobState.failed
    reason = "" if outcome == JobState.completed else outcome.value
    launched = path.with_suffix(".launch")
    if outcome == JobState.failed and launched.exists() and launched.stat().st_size:
        reason = f"failed: {launched.read_text(errors='replace').strip()}"[:200]
    _update(path, state=outcome, reason=reason, ended_at=_now(), exit_code=code)


def _start(state: dict, slots: list[int], launch) -> subprocess.Popen:
    """The job's process, as isolation.py planned it: its account, its environment, its limits, its sandbox."""
    plan = state["isolation"]
    env = isolation.job_environment(user=plan["user"], workdir=state["workdir"], own={
        **state["environment"], "JAIF_JOB_ID": state["job_id"], "CUDA_VISIBLE_DEVICES": ",".join(map(str, slots)),
    })
    argv = ["bash", "-c", WRAPPER, "jaif-job", state["stdout"], state["stderr"], state["script"]]
    as_user: dict = {}
    if plan["bwrap"]:
        prefix = [plan["bwrap"], *isolation.sandbox_args(hide_dirs=plan["hide_dirs"], hide_files=plan["hide_files"],
                                                          workdir=state["workdir"], expose=plan.get("expose", ()))]
        if plan["drop"]:
            prefix += isolation.drop_args(plan["uid"], plan["gid"])
        argv = prefix + argv
    elif plan["drop"]:
        as_user = {"user": plan["uid"], "group": plan["gid"], "extra_groups": []}
    limits = state["limits"]

    def limit() -> None:  # in the child, before exec (inherited through bwrap and setpriv)
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"]))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits["memory_bytes"]:
            resource.setrlimit(resource.RLIMIT_DATA, (limits["memory_bytes"], limits["memory_bytes"]))

    return subprocess.Popen(
        argv, cwd=state["workdir"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=launch,
        env=env, start_new_session=True, close_fds=True, umask=0o077, preexec_fn=limit, **as_user,
    )


def _kill_group(child: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    supervise(Path(sys.argv[1]))
