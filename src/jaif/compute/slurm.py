"""The ``slurm`` scheduler: Slurm 22.05's command-line tools with machine-readable output.

sbatch --parsable, squeue --json, sacct --parsable2, scancel, sinfo --json and scontrol for partitions,
sacctmgr -i -n -P for accounts. Argv lists only, never a shell; a tool that fails or hangs becomes an
UpstreamError (502) carrying Slurm's own message, a missing one Unavailable (503).
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import re
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from jaif.compute.isolation import SAFE_PATH
from jaif.compute.models import JobState
from jaif.compute.scheduler import AccountingEntry, JobRequest, JobStatus, PartitionInfo
from jaif.config import SlurmSettings
from jaif.errors import Forbidden, Unavailable, UpstreamError

SACCT_FIELDS = (
    "JobIDRaw,JobName,User,Account,Partition,State,Submit,Start,End,ElapsedRaw,AllocTRES,NNodes,"
    "ConsumedEnergyRaw,Cluster"
)
_STATES = {
    "PENDING": JobState.pending, "REQUEUED": JobState.pending, "CONFIGURING": JobState.pending,
    "RESV_DEL_HOLD": JobState.pending, "REQUEUE_FED": JobState.pending, "REQUEUE_HOLD": JobState.pending,
    "RUNNING": JobState.running, "COMPLETING": JobState.running, "SUSPENDED": JobState.running,
    "STAGE_OUT": JobState.running, "SIGNALING": JobState.running, "RESIZING": JobState.running,
    "COMPLETED": JobState.completed, "CANCELLED": JobState.cancelled, "TIMEOUT": JobState.timeout,
    "DEADLINE": JobState.timeout, "FAILED": JobState.failed, "NODE_FAIL": JobState.failed,
    "OUT_OF_MEMORY": JobState.failed, "BOOT_FAIL": JobState.failed, "PREEMPTED": JobState.failed,
    "REVOKED": JobState.cancelled, "SPECIAL_EXIT": JobState.failed,
}


def job_state(text: str) -> JobState:
    """Slurm's state ("CANCELLED by 0", "RUNNING") as jaif's."""
    return _STATES.get(text.split(" ", 1)[0].rstrip("+").upper(), JobState.failed)


@lru_cache(maxsize=4096)
def _utc_offset(hour: str) -> timedelta:
    """This machine's UTC offset in the hour ``YYYY-MM-DDTHH`` (local time, as Slurm prints it)."""
    local = datetime.fromisoformat(hour + ":30:00")
    return local - local.astimezone(UTC).replace(tzinfo=None)


def slurm_time(text: str) -> datetime | None:
    """A time as Slurm prints it (local time, no zone; "Unknown"/"None" when unset) in UTC."""
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    # Read as UTC, then moved by the local offset: a third of the time of .replace(tzinfo=UTC).
    return datetime.fromisoformat(text + "+00:00") - _utc_offset(text[:13])


def _epoch(value) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and value > 0 else None


_GPUS = re.compile(r"(?:^|,)gres/gpu=(\d+)")


def gpus_of(tres: str) -> int:
    """GPUs in a TRES string such as "billing=1,cpu=1,gres/gpu=2,mem=256M,node=1" (typed ones if no total)."""
    found = _GPUS.search(tres)
    if found:
        return int(found.group(1))
    total, typed = None, 0
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == "gres/gpu":
            total = int(value or 0)
        elif key.startswith("gres/gpu:"):
            typed += int(value or 0)
    return total if total is not None else typed


class SlurmTools:
    """Runs Slurm's commands with the configured SLURM_CONF and directory; translates their failures."""

    def __init__(self, settings: SlurmSettings) -> None:
        self.settings = settings
        self.env = dict(os.environ)
        if settings.conf is not None:
            self.env["SLURM_CONF"] = str(settings.conf)

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        path = str(self.settings.bin_dir / tool) if self.settings.bin_dir else tool
        try:
            proc = subprocess.run(
                [path, *args], input=input, capture_output=True, text=True, env=self.env if env is None else env,
                timeout=self.settings.command_timeout_s,
            )
        except FileNotFoundError as exc:
            raise Unavailable(f"Slurm's {tool} is not installed here (set slurm.bin_dir?)") from exc
        except subprocess.TimeoutExpired as exc:
            raise UpstreamError(f"Slurm's {tool} did not answer within {self.settings.command_timeout_s:g} s") from exc
        if check and proc.returncode != 0:
            message = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
            raise UpstreamError(f"Slurm refused: {tool}: {message or f'exit status {proc.returncode}'}")
        return proc

    def job_env(self, request: JobRequest) -> dict[str, str]:
        """sbatch's whole environment, which Slurm hands to the job: a sane PATH/HOME/LANG, SLURM_CONF and the
        job's own variables; nothing of the server's (no JAIF_* setting, no secret)."""
        env = {"PATH": SAFE_PATH if self.settings.bin_dir is None else f"{self.settings.bin_dir}:{SAFE_PATH}",
               "LANG": "C.UTF-8", "HOME": str(request.workdir)}
        if "SLURM_CONF" in self.env:
            env["SLURM_CONF"] = self.env["SLURM_CONF"]
        return env | request.environment

    def cluster(self) -> str:
        """The cluster's name: slurm.cluster, else the ClusterName of slurm.conf (scontrol show config)."""
        if self.settings.cluster:
            return self.settings.cluster
        for line in self.run("scontrol", "show", "config").stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName":
                return value.strip()
        raise UpstreamError("scontrol show config names no ClusterName")


class SlurmScheduler:
    kind = "slurm"

    def __init__(self, tools: SlurmTools) -> None:
        self.tools = tools
        self._cluster = tools.settings.cluster
        self._hosts: dict[str, tuple[str, ...]] = {}  # node name -> its names (sinfo), read again on a miss

    @property
    def cluster(self) -> str:
        if self._cluster is None:
            self._cluster = self.tools.cluster()
        return self._cluster

    def partitions(self) -> list[PartitionInfo]:
        nodes = json.loads(self.tools.run("sinfo", "--json").stdout).get("nodes", [])
        found = []
        for line in self.tools.run("scontrol", "-o", "show", "partition").stdout.splitlines():
            fields = dict(item.partition("=")[::2] for item in line.split())
            name = fields.get("PartitionName")
            if not name:
                continue
            members = [n for n in nodes if name in n.get("partitions", [])]
            gpus = [gpus_of(n.get("tres", "")) for n in members] or [0]
            found.append(PartitionInfo(
                name=name, nodes=len(members) or int(fields.get("TotalNodes", 0) or 0), gpus_per_node=min(gpus),
                cpus_per_node=min([int(n.get("cpus", 1)) for n in members] or [1]),
                memory_mb_per_node=min([int(n.get("real_memory", 0)) for n in members] or [0]),
                max_walltime_min=_minutes(fields.get("MaxTime", "UNLIMITED")),
            ))
        return found

    def submit(self, request: JobRequest) -> str:
        args = [
            "--parsable", f"--job-name={request.name}", f"--account={request.account}",
            f"--partition={request.partition}", f"--nodes={request.nodes}", f"--time={request.time_limit_min}",
            f"--chdir={request.workdir}", f"--output={request.stdout}", f"--error={request.stderr}",
        ]
        if request.gpus_per_node:
            args.append(f"--gpus-per-node={request.gpus_per_node}")
        if request.run_as and request.run_as != getpass.getuser():
            if os.geteuid() != 0:
                raise Forbidden(f"jaif runs as {getpass.getuser()} and cannot submit as {request.run_as} (needs root)")
            who = pwd.getpwnam(request.run_as)
            args += [f"--uid={who.pw_uid}", f"--gid={who.pw_gid}"]
        try:
            out = self.tools.run("sbatch", *args, str(request.script), env=self.tools.job_env(request)).stdout
        except UpstreamError as exc:
            if "account" not in exc.message:
                raise
            hint = " (has `jaif slurm sync` run since the project got its allocation?)"
            raise UpstreamError(exc.message + hint) from exc
        return out.strip().split(";", 1)[0]

    def cancel(self, job_id: str) -> None:
        self.tools.run("scancel", str(job_id))

    def status(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        wanted = {str(j) for j in job_ids}
        if not wanted:
            return {}
        found = {}
        # squeue --json ignores its filters in 22.05: it lists every job the controller still holds.
        for job in json.loads(self.tools.run("squeue", "--json").stdout).get("jobs", []):
            job_id = str(job.get("job_id"))
            if job_id in wanted:
                state = job_state(str(job.get("job_state", "")))
                reason = str(job.get("state_reason") or "")
                found[job_id] = JobStatus(
                    job_id=job_id, state=state, reason="" if reason == "None" else reason,
                    started_at=_epoch(job.get("start_time")) if state != JobState.pending else None,
                    ended_at=_epoch(job.get("end_time")) if state.finished else None,
                    exit_code=job.get("exit_code") if state.finished else None,
                    hosts=self.hosts(job_nodes(job)) if state == JobState.running else (),
                )
        missing = sorted(wanted - set(found))
        if missing:  # gone from the controller (MinJobAge): ask the accounting database
            out = self.tools.run(
                "sacct", "-X", "-n", "-P", f"--jobs={','.join(missing)}", "--format=JobIDRaw,State,Start,End,ExitCode"
            ).stdout
            for line in out.splitlines():
                job_id, state, start, end, exit_code = (line.split("|") + [""] * 5)[:5]
                if job_id in wanted:
                    s = job_state(state)
                    found[job_id] = JobStatus(
                        job_id=job_id, state=s, started_at=slurm_time(start), ended_at=slurm_time(end) if s.finished
                        else None, exit_code=int(exit_code.split(":")[0]) if s.finished and exit_code else None,
                    )
        return found

    def hosts(self, nodes: list[str]) -> tuple[str, ...]:
        """Every name of these Slurm nodes: each one's name, hostname and address (sinfo --json, read
        once and again when a node is new to it)."""
        if any(n not in self._hosts for n in nodes):
            self._hosts = node_hosts(json.loads(self.tools.run("sinfo", "--json").stdout).get("nodes", []))
        return tuple(dict.fromkeys(h for n in nodes for h in self._hosts.get(n, (n,))))

    def accounting(self, *, since: datetime) -> Iterator[AccountingEntry]:
        start = since.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
        args = ["-a", "-n", "-P", f"--format={SACCT_FIELDS}", f"--starttime={start}", "--endtime=now"]
        if self.tools.settings.cluster:
            args.append(f"--clusters={self.tools.settings.cluster}")
        yield from parse_sacct(self.tools.run("sacct", *args).stdout.splitlines())


def _minutes(text: str) -> int | None:
    """Slurm's time limit ("UNLIMITED", "2:00:00", "1-00:00:00", "30") in minutes."""
    if text in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    hours, minutes = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])  # h:m:s, m:s or m
    return int(days or 0) * 1440 + hours * 60 + minutes


def job_nodes(job: dict) -> list[str]:
    """The names of a running job's nodes in ``squeue --json`` (22.05: ``job_resources.allocated_nodes``;
    else ``nodes`` when it names a single node, as a one-node replica's does)."""
    resources = job.get("job_resources") or {}
    names = [str(n["nodename"]) for n in resources.get("allocated_nodes") or [] if n.get("nodename")]
    if names:
        return names
    listed = str(job.get("nodes") or "")
    return [listed] if listed and not any(c in listed for c in "[],") else []


def node_hosts(nodes: list[dict]) -> dict[str, tuple[str, ...]]:
    """Each node's names in ``sinfo --json``: its Slurm name, its hostname and its address (NodeHostname
    and NodeAddr, which differ from the name where several nodes share a host, as on the test cluster)."""
    found = {}
    for node in nodes:
        name = str(node.get("name") or "")
        if name:
            found[name] = tuple(dict.fromkeys(str(v) for v in (name, node.get("hostname"), node.get("address")) if v))
    return found


def parse_sacct(lines: Iterable[str]) -> Iterator[AccountingEntry]:
    """Finished jobs from ``sacct -n -P --format=SACCT_FIELDS`` lines: each allocation line, with the
    energy of its steps where the allocation line records none. (Hot: 100,000 jobs take about a second.)"""
    jobs: dict[str, list[str]] = {}
    step_energy: dict[str, float] = defaultdict(float)
    for line in lines:
        f = line.split("|")
        if len(f) < 14:
            continue
        if "." in f[0]:  # a step ("123.batch", "123.0"): only its energy counts
            if f[12]:
                step_energy[f[0].partition(".")[0]] += float(f[12])
        else:
            jobs[f[0]] = f
    for job_id, f in jobs.items():
        state = job_state(f[5])
        if not state.finished:
            continue
        ended = slurm_time(f[8])
        if ended is None:
            continue
        energy = float(f[12]) if f[12] else 0.0
        yield AccountingEntry(
            f[13], job_id, f[1], f[2], f[3], f[4], state, slurm_time(f[6]), slurm_time(f[7]), ended,
            int(f[9] or 0), int(f[11] or 0), gpus_of(f[10]), energy or step_energy.get(job_id) or None,
        )


class Sacctmgr:
    """Slurm's account database. Reads all associations in one call; applies a plan in at most two:
    its commands on one sacctmgr's stdin, and its additions and limits as one ``sacctmgr load`` file
    (a single commit in slurmdbd)."""

    def __init__(self, tools: SlurmTools) -> None:
        self.tools = tools

    def associations(self) -> list[tuple[str, str, str, str]]:
        args = ["-n", "-P", "show", "associations", "format=Account,User,ParentName,GrpTRESMins"]
        if self.tools.settings.cluster:
            args.append(f"cluster={self.tools.settings.cluster}")
        rows = []
        for line in self.tools.run("sacctmgr", *args).stdout.splitlines():
            account, user, parent, limits = (line.split("|") + ["", "", "", ""])[:4]
            rows.append((account, user, parent, limits))
        return rows

    def apply(self, commands: list[list[str]], load: list[str]) -> list[str]:
        errors: list[str] = []
        if commands:
            script = "\n".join(" ".join(c) for c in commands) + "\nexit\n"
            proc = self.tools.run("sacctmgr", "-i", input=script, check=False)
            errors += [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        if load:
            with tempfile.NamedTemporaryFile("w", prefix="jaif-sync-", suffix=".cfg") as f:
                f.write("\n".join([f"Cluster - '{self.tools.cluster()}'", *load]) + "\n")
                f.flush()
                proc = self.tools.run("sacctmgr", "-i", "load", f"file={f.name}", check=False)
            if proc.returncode != 0:
                errors += [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        return errors
