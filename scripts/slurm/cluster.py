#!/usr/bin/env python3
"""A real Slurm 22.05 cluster on loopback for jaif's tests: start, stop, status.

    python scripts/slurm/cluster.py start [--state DIR] [--fresh] [--nodes 2] [--gpus 4]
    python scripts/slurm/cluster.py stop  [--state DIR]
    python scripts/slurm/cluster.py status [--state DIR]
    python scripts/slurm/cluster.py env   [--state DIR]    # the SLURM_CONF line for a shell

Everything lives in a private state dir (default /var/tmp/jaif-slurm): the configs written from
templates/, munged's key and socket, the spools, pid files and logs, the fake GPUs (character devices
with NVIDIA's major 195). Daemons: munged (as munge), slurmdbd, slurmctld, one slurmd per node (all on
127.0.0.1, ports of their own). Accounting goes to the MariaDB that runs here (socket, root without a
password), in a database of its own; where none runs, a private mariadbd is started. Stopped by pid
file, checking /proc/PID/exe first, never by name. Needs root and the packages of install.sh.
Facts behind each choice: ../../../shared/slurm/FACTS.md. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_STATE = Path(os.environ.get("JAIF_TEST_SLURM_DIR", "/var/tmp/jaif-slurm"))
SYSTEM_MYSQL_SOCKET = Path("/run/mysqld/mysqld.sock")
# Debian's daemons are named *-wlm; a pid file whose process is anything else is stale.
EXE_NAMES = {
    "munged": {"munged"},
    "mariadbd": {"mariadbd", "mysqld"},
    "slurmdbd": {"slurmdbd", "slurmdbd-wlm"},
    "slurmctld": {"slurmctld", "slurmctld-wlm"},
    "slurmd": {"slurmd", "slurmd-wlm"},
}


class ClusterError(RuntimeError):
    pass


@dataclass
class Cluster:
    state: Path = DEFAULT_STATE
    cluster: str = "jaiftest"
    partition: str = "gpu"
    nodes: int = 2
    gpus: int = 4
    cpus: int = 8
    memory_mb: int = 16384
    max_time: str = "02:00:00"
    ctld_port: int = 16817
    dbd_port: int = 16819
    node_port_first: int = 17001
    db_name: str = "jaif_slurm_acct"
    db_user: str = "jaif_slurm"
    db_password: str = "jaif-slurm-test"
    node_prefix: str = "jt"
    log: list[str] = field(default_factory=list)

    # -- paths -------------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.state / "etc" / "slurm.conf"

    @property
    def node_names(self) -> list[str]:
        return [f"{self.node_prefix}{i}" for i in range(1, self.nodes + 1)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def pid_files(self) -> list[tuple[str, Path]]:
        run = self.state / "run"
        files = [("slurmd", run / f"slurmd-{n}.pid") for n in self.node_names]
        files += [("slurmctld", run / "slurmctld.pid"), ("slurmdbd", run / "slurmdbd.pid")]
        files += [("munged", self.state / "munge" / "munged.pid"), ("mariadbd", self.state / "mysql" / "mariadbd.pid")]
        return files

    # -- commands ----------------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 60, input: str | None = None) -> str:
        proc = subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def wait(self, what: str, probe, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if probe():
                    return
            except (ClusterError, subprocess.TimeoutExpired, OSError):
                pass
            time.sleep(0.2)
        raise ClusterError(f"{what} did not come up within {timeout:.0f} s; logs in {self.state / 'log'}")

    # -- set-up ------------------------------------------------------------------------------------
    def write_configs(self) -> None:
        host = socket.gethostname().split(".")[0]
        local = self._system_mysql()
        db_host, db_port = ("localhost", "3306") if local else ("127.0.0.1", str(self._private_db_port()))
        values = {
            **{k: str(v) for k, v in vars(self).items() if not isinstance(v, list)},
            "state": str(self.state),
            "host": host,
            "slurmd_port": str(self.node_port_first),
            "node_port_last": str(self.node_port_first + self.nodes - 1),
            "db_host": db_host,
            "db_port": db_port,
        }
        etc = self.state / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "slurmdbd.conf", "cgroup.conf"):
            (etc / name).write_text(Template((TEMPLATES / name).read_text()).substitute(values))
        gres = ["AutoDetect=off"]
        for i, node in enumerate(self.node_names):
            first, last = i * self.gpus, (i + 1) * self.gpus - 1
            gres.append(f"NodeName={node} Name=gpu File={self.state}/gpu/nvidia[{first}-{last}]")
        (etc / "gres.conf").write_text("# Written by scripts/slurm/cluster.py: fake GPUs.\n" + "\n".join(gres) + "\n")
        slurm = pwd.getpwnam("slurm")
        os.chown(etc / "slurmdbd.conf", slurm.pw_uid, slurm.pw_gid)
        os.chmod(etc / "slurmdbd.conf", 0o600)

    def make_dirs(self, fresh: bool) -> None:
        if fresh and self.state.exists():
            for sub in ("spool", "run", "log", "etc"):
                shutil.rmtree(self.state / sub, ignore_errors=True)
        slurm, munge = pwd.getpwnam("slurm"), pwd.getpwnam("munge")
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o755)
        for sub, owner in (("spool/ctld", slurm), ("spool/d", None), ("run", slurm), ("log", slurm), ("munge", munge)):
            path = self.state / sub
            path.mkdir(parents=True, exist_ok=True)
            if owner is not None:
                os.chown(path, owner.pw_uid, owner.pw_gid)
            os.chmod(path, 0o755)
        gpu = self.state / "gpu"
        gpu.mkdir(exist_ok=True)
        for minor in range(self.nodes * self.gpus):
            dev = gpu / f"nvidia{minor}"
            if not (dev.exists() and stat.S_ISCHR(dev.stat().st_mode)):
                dev.unlink(missing_ok=True)
                os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(195, minor))
                os.chmod(dev, 0o666)

    def start_munge(self) -> None:
        d = self.state / "munge"
        if self.running("munged", d / "munged.pid"):
            return
        key = d / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        munge = pwd.getpwnam("munge")
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o600)
        self.run(
            "runuser", "-u", "munge", "--", "munged", f"--key-file={key}", f"--socket={d / 'munge.socket'}",
            f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}", f"--seed-file={d / 'munged.seed'}",
        )
        self.wait("munged", lambda: (d / "munge.socket").exists())

    def _system_mysql(self) -> bool:
        return SYSTEM_MYSQL_SOCKET.is_socket()

    def _private_db_port(self) -> int:
        return self.dbd_port + 1000 if self.dbd_port < 64000 else self.dbd_port - 1000

    def mysql(self, sql: str) -> None:
        if self._system_mysql():
            argv = ["mysql", "-uroot", f"--socket={SYSTEM_MYSQL_SOCKET}"]
        else:
            argv = ["mysql", "-uroot", "-h127.0.0.1", f"-P{self._private_db_port()}"]
        self.run(*argv, "-e", sql)

    def start_database(self, fresh: bool) -> None:
        if not self._system_mysql():
            self._start_private_mariadb()
        pw = self.db_password
        for host in ("localhost", "127.0.0.1"):
            self.mysql(f"CREATE USER IF NOT EXISTS '{self.db_user}'@'{host}' IDENTIFIED BY '{pw}'; "
                       f"GRANT ALL ON `{self.db_name}`.* TO '{self.db_user}'@'{host}';")
        if fresh:
            self.mysql(f"DROP DATABASE IF EXISTS `{self.db_name}`")

    def _start_private_mariadb(self) -> None:
        d = self.state / "mysql"
        if self.running("mariadbd", d / "mariadbd.pid"):
            return
        mysql = pwd.getpwnam("mysql")
        if not (d / "data" / "mysql").exists():
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, mysql.pw_uid, mysql.pw_gid)
            self.run("mariadb-install-db", "--user=mysql", f"--datadir={d / 'data'}",
                     "--auth-root-authentication-method=normal")
        subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={d / 'data'}", f"--socket={d / 'mysqld.sock'}",
             f"--pid-file={d / 'mariadbd.pid'}", "--bind-address=127.0.0.1", f"--port={self._private_db_port()}",
             f"--log-error={d / 'mariadbd.err'}", "--innodb-buffer-pool-size=128M"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.wait("mariadbd", lambda: self.mysql("SELECT 1") is None, timeout=60)

    def start_slurm(self) -> None:
        run = self.state / "run"
        if not self.running("slurmdbd", run / "slurmdbd.pid"):
            self.run("slurmdbd")
        self.wait("slurmdbd", lambda: self.run("sacctmgr", "-n", "-P", "show", "cluster", timeout=10) is not None)
        if self.cluster not in self.run("sacctmgr", "-n", "-P", "show", "cluster", "format=cluster").split():
            self.run("sacctmgr", "-i", "add", "cluster", self.cluster)
        if not self.running("slurmctld", run / "slurmctld.pid"):
            self.run("slurmctld")
        self.wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping", timeout=10))
        for node in self.node_names:
            if not self.running("slurmd", run / f"slurmd-{node}.pid"):
                self.run("slurmd", "-N", node)
        self.wait("the nodes", self._nodes_ready, timeout=30)

    def _nodes_ready(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N|%T", timeout=10)
        states = dict(line.split("|", 1) for line in out.split() if "|" in line)
        stuck = [n for n, s in states.items() if "drain" in s or s.startswith("inval")]
        if stuck:  # a drain saved by an earlier bad config survives restarts (FACTS.md)
            self.run("scontrol", "update", f"nodename={','.join(stuck)}", "state=resume", check=False)
        up = ("idle", "mixed", "allocated")
        return len(states) == self.nodes and all(s.rstrip("*") in up for s in states.values())

    def start(self, *, fresh: bool = False) -> None:
        if os.geteuid() != 0:
            raise ClusterError("the Slurm test cluster needs root (it starts daemons and makes device files)")
        tools = ("munged", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacctmgr")
        missing = [b for b in tools if not shutil.which(b)]
        if missing:
            raise ClusterError(f"Slurm is not installed ({', '.join(missing)} missing): run scripts/slurm/install.sh")
        if fresh:
            self.stop()
        self.make_dirs(fresh)
        self.write_configs()
        self.start_munge()
        self.start_database(fresh)
        self.start_slurm()

    # -- stop --------------------------------------------------------------------------------------
    @staticmethod
    def pid_of(daemon: str, pid_file: Path) -> int | None:
        """The pid in ``pid_file`` if that process runs and is ``daemon`` (by /proc/PID/exe), else None."""
        try:
            pid = int(pid_file.read_text().split()[0])
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name.removesuffix(" (deleted)")
        except (OSError, ValueError, IndexError):
            return None
        return pid if exe in EXE_NAMES[daemon] else None

    def running(self, daemon: str, pid_file: Path) -> bool:
        return self.pid_of(daemon, pid_file) is not None

    def stop(self, timeout: float = 15.0) -> None:
        if self.running("slurmctld", self.state / "run" / "slurmctld.pid"):
            jobs = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10).split()
            if jobs:
                self.run("scancel", *jobs, check=False, timeout=10)
        for daemon, pid_file in self.pid_files():
            pid = self.pid_of(daemon, pid_file)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid_of(daemon, pid_file) == pid and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid_of(daemon, pid_file) == pid:
                os.kill(pid, signal.SIGKILL)

    def destroy(self) -> None:
        """After stop: drop the accounting database and remove the state dir (for private clusters)."""
        try:
            self.mysql(f"DROP DATABASE IF EXISTS `{self.db_name}`")
        except ClusterError:
            pass
        shutil.rmtree(self.state, ignore_errors=True)

    @classmethod
    def private(cls, **kw) -> Cluster:
        """A cluster of its own (state dir, ports, database), beside any other on this machine. The
        state dir records the process that owns it; ``reap_orphans`` removes those whose owner died."""
        cls.reap_orphans()
        state = Path(tempfile.mkdtemp(prefix="jaif-slurm-", dir="/var/tmp"))
        (state / "owner").write_text(str(os.getpid()))
        ports = _free_ports(3)
        node_first = _free_run(kw.get("nodes", 2))
        return cls(state=state, ctld_port=ports[0], dbd_port=ports[1], node_port_first=node_first,
                   db_name=_private_db_name(state), **kw)

    @classmethod
    def reap_orphans(cls) -> None:
        """Stop and remove private clusters whose owning process is gone (a test run that was killed)."""
        for owner in Path("/var/tmp").glob("jaif-slurm-*/owner"):
            try:
                os.kill(int(owner.read_text()), 0)
                continue  # its owner still runs
            except (ProcessLookupError, ValueError):
                pass
            except PermissionError:
                continue
            nodes = len(list((owner.parent / "spool" / "d").glob("*"))) or 2
            orphan = cls(state=owner.parent, nodes=nodes, db_name=_private_db_name(owner.parent))
            orphan.stop()
            orphan.destroy()

    def status(self) -> dict[str, bool]:
        return {f"{d} ({p.name})": self.running(d, p) for d, p in self.pid_files()}


def _private_db_name(state: Path) -> str:
    return f"jaif_slurm_{state.name.rsplit('-', 1)[-1].lower()}"


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_run(n: int) -> int:
    """The first of ``n`` consecutive free ports (slurmd's Port=[a-b] range)."""
    for first in range(20000 + os.getpid() % 20000, 60000, n):
        try:
            sockets = []
            for port in range(first, first + n):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise ClusterError("no free ports for slurmd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--fresh", action="store_true", help="wipe the cluster's state and accounting first")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=4, help="fake GPUs per node")
    args = parser.parse_args(argv)
    cluster = Cluster(state=args.state, nodes=args.nodes, gpus=args.gpus)
    try:
        if args.action == "start":
            t0 = time.monotonic()
            cluster.start(fresh=args.fresh)
            print(f"Slurm up in {time.monotonic() - t0:.1f} s; export SLURM_CONF={cluster.conf}")
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "env":
            print(f"export SLURM_CONF={cluster.conf}")
        else:
            for name, up in cluster.status().items():
                print(f"{name}: {'running' if up else 'stopped'}")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
