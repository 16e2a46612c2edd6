"""How a local job is kept from the server and from other projects (the ``local`` executor).

A local job never runs as root, nor as the account that owns jaif's database, secrets and ``var/``:

- When jaif runs as root, each project's jobs run as an unprivileged account of their own
  (``compute.job_user_prefix`` + a digest of the project's Slurm-style account name; no home, no login
  shell), which
  ``jaif init`` checks it can create and the first job of the project creates (``useradd --system``).
- When jaif runs as an ordinary user it cannot change user: local jobs are refused, unless
  ``compute.local_single_user`` (a single-user laptop) lets them run as that user.
- Each job gets a clean environment, Linux limits from its request (CPU time, memory, processes), its
  own directory (mode 0700, owned by the job's account) and, where bubblewrap works, a sandbox: the file
  system read-only, ``var/``, the jobs directory (all but the job's own) and the database file hidden,
  its own /proc, /tmp and /dev. Where bubblewrap does not work, ``compute.sandbox = "auto"`` falls back to
  the account and file permissions alone and logs a warning; ``"bwrap"`` refuses local jobs instead.

Nothing here runs a job: this module decides *how* (``Isolation.plan``); local.py's supervisor does it.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jaif.config import ComputeSettings
from jaif.errors import Unavailable

log = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def can_drop_privileges() -> bool:
    """Whether jaif may run jobs as other accounts (it runs as root). Tests change this, nothing else."""
    return os.geteuid() == 0


@dataclass(frozen=True)
class JobPlan:
    """How one local job runs: as whom, in which sandbox (None: none), hiding what."""

    user: str
    uid: int
    gid: int
    bwrap: str | None = None
    hide_dirs: tuple[str, ...] = ()  # mounted empty (tmpfs) in the sandbox
    hide_files: tuple[str, ...] = ()  # /dev/null mounted over them
    expose: tuple[str, ...] = ()  # read-only in the sandbox although a closed directory holds them
    drop: bool = False  # switch to uid/gid (jaif is root)

    def as_state(self) -> dict:
        return {"user": self.user, "uid": self.uid, "gid": self.gid, "bwrap": self.bwrap,
                "hide_dirs": list(self.hide_dirs), "hide_files": list(self.hide_files), "expose": list(self.expose),
                "drop": self.drop}


@dataclass
class Isolation:
    """The isolation of local jobs, from the settings; probes bubblewrap once."""

    settings: ComputeSettings
    data_dir: Path
    jobs_dir: Path
    database_file: Path | None = None
    _bwrap: tuple[str | None, str] | None = field(default=None, repr=False)  # (path, why not) once probed

    # -- the account -----------------------------------------------------------------------------------

    def account_name(self, account: str) -> str:
        """The Unix account of the project whose (Slurm-style) account is ``account``."""
        return self.settings.job_user_prefix + hashlib.sha256(account.encode()).hexdigest()[:10]

    def job_account(self, account: str) -> str:
        """The Unix account the project's local jobs run as; Unavailable (saying what to set) when jaif
        cannot run them as anyone but itself."""
        if can_drop_privileges():
            name = self.account_name(account)
            ensure_account(name, f"jaif jobs of {account}")
            return name
        if self.settings.local_single_user:
            if os.geteuid() == 0:  # the opt-in is for an ordinary user's laptop: never root
                raise Unavailable("local jobs are refused: they never run as root, and compute.local_single_user "
                                  "would run them as the user jaif runs as (root here)")
            return getpass.getuser()
        raise Unavailable(
            f"local jobs are refused: jaif runs as {getpass.getuser()}, not root, so it cannot run jobs as an "
            "account of their own, and a job would run as the account that owns jaif's database, secrets and "
            "var/. Run jaif as root (it then runs each project's jobs as an unprivileged account), use "
            "JAIF_SCHEDULER=slurm, or on a single-user machine set JAIF_COMPUTE__LOCAL_SINGLE_USER=true"
        )

    # -- the sandbox -----------------------------------------------------------------------------------

    def bwrap(self) -> str | None:
        """bubblewrap's path when jobs get a sandbox, None when not (logged once); Unavailable when
        ``compute.sandbox = "bwrap"`` and it does not work here."""
        if self.settings.sandbox == "off":
            return None
        if self._bwrap is None:
            self._bwrap = probe_bwrap()
            if self._bwrap[0] is None and self.settings.sandbox == "auto":
                log.warning("local jobs run WITHOUT a sandbox (%s): only their own account, limits and file "
                            "permissions keep them apart; install bubblewrap (make run does, as root)", self._bwrap[1])
        path, why = self._bwrap
        if path is None and self.settings.sandbox == "bwrap":
            raise Unavailable(f"local jobs are refused: compute.sandbox is bwrap, but bubblewrap does not work here "
                              f"({why}); install it (apt-get install bubblewrap) or set JAIF_COMPUTE__SANDBOX=auto")
        return path

    def describe(self) -> str:
        """How local jobs are isolated here, in a sentence (``jaif init`` prints it); prepares the directories."""
        try:
            if can_drop_privileges():
                prefix = self.settings.job_user_prefix
                who = f"each project's own unprivileged account ({prefix}…, made on its first job)"
            else:
                who = self.job_account("x")
            sandbox = self.bwrap()
        except Unavailable as exc:
            return exc.message
        self.prepare_dirs()
        why = self._bwrap[1] if self._bwrap else "compute.sandbox is off"
        how = "in a bubblewrap sandbox" if sandbox else f"WITHOUT a sandbox ({why})"
        return f"local jobs run as {who}, {how}, with a clean environment and limits"

    def plan(self, account: str) -> JobPlan:
        """How the next job of the project whose account is ``account`` runs. Prepares the directories'
        modes; raises Unavailable (with what to set) when the job could not be kept from the server."""
        user = self.job_account(account)
        who = pwd.getpwnam(user)
        drop = who.pw_uid != os.geteuid()
        self.prepare_dirs()
        bwrap = self.bwrap()
        hide_dirs = [str(d) for d in (self.data_dir, self.jobs_dir) if d.is_dir()]
        blocked = unreachable(self.jobs_dir, who.pw_uid, who.pw_gid, stop_at=(self.data_dir, self.jobs_dir))
        if blocked is not None and drop:
            if bwrap is None:
                raise Unavailable(
                    f"local jobs are refused: their account {user} cannot reach compute.jobs_dir {self.jobs_dir}: "
                    f"{blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):04o}) lets only its owner through. "
                    f"Give it the traverse permission (chmod o+x {blocked}) or set JAIF_COMPUTE__JOBS_DIR elsewhere"
                )
            hide_dirs.insert(0, str(blocked))  # nothing under it was the job's to see: an empty one instead
        expose = []
        if bwrap is not None and drop:
            # jaif's own Python (the templates' interpreter, the venv's packages and model files), readable
            # as installed but maybe under a closed directory (a pyenv in /root): shown alone, read-only
            for prefix in sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}):
                closed = unreachable(Path(prefix), who.pw_uid, who.pw_gid)
                if closed is not None and closed != Path(prefix):
                    hide_dirs.insert(0, str(closed))
                    expose.append(prefix)
        files = []
        if self.database_file is not None:
            base = str(self.database_file)
            files = [f for f in (base, base + "-wal", base + "-shm", base + "-journal") if os.path.exists(f)]
        return JobPlan(user=user, uid=who.pw_uid, gid=who.pw_gid, bwrap=bwrap,
                       hide_dirs=tuple(dict.fromkeys(hide_dirs)), hide_files=tuple(files), expose=tuple(expose),
                       drop=drop)

    def prepare_dirs(self) -> None:
        """var/ and the jobs directory to the server's account alone, traversable (never listable) by job
        accounts where the jobs directory lies inside; the SQLite database file 0600."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        _chmod_own(self.jobs_dir, 0o711)
        if self.data_dir.exists():
            _chmod_own(self.data_dir, 0o711 if self.jobs_dir.is_relative_to(self.data_dir) else 0o700)
            for entry in self.data_dir.iterdir():  # all else in var/ (the outbox, secrets): the server's alone
                if not (entry == self.jobs_dir or self.jobs_dir.is_relative_to(entry) or entry.is_symlink()):
                    _chmod_own(entry, stat.S_IMODE(entry.stat().st_mode) & 0o700)
        if self.database_file is not None and self.database_file.exists():
            _chmod_own(self.database_file, 0o600)


def _chmod_own(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        path.chmod(mode)


def unreachable(path: Path, uid: int, gid: int, *, stop_at: tuple[Path, ...] = ()) -> Path | None:
    """The highest directory on the way to ``path`` that ``uid``/``gid`` may not pass, else None; the
    walk ends at the first of ``stop_at`` (jaif prepares those)."""
    for part in [*reversed(path.parents), path]:
        if part in stop_at:
            return None
        st = part.stat()
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return part
    return None


def ensure_account(name: str, comment: str) -> None:
    """Create the system account ``name`` (its own group, no home, no shell) when missing."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", comment[:200], name],
        capture_output=True, text=True, check=False,
    )
    try:
        pwd.getpwnam(name)
    except KeyError:
        why = proc.stderr.strip() or f"useradd exit status {proc.returncode}"
        raise Unavailable(f"could not create the job account {name}: {why}") from None


def probe_bwrap() -> tuple[str | None, str]:
    """(bwrap's path, "") when a sandbox as jobs get it starts here, else (None, why not)."""
    path = shutil.which("bwrap")
    if path is None:
        return None, "bubblewrap (bwrap) is not installed"
    argv = [path, *sandbox_args(hide_dirs=(), hide_files=(), workdir=None)]
    if os.geteuid() == 0:
        argv += [*drop_args(65534, 65534)]
    try:
        proc = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=20, env={"PATH": SAFE_PATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"bwrap did not start: {exc}"
    if proc.returncode != 0:
        return None, f"bwrap does not work here: {proc.stderr.strip() or proc.returncode}"
    return path, ""


def sandbox_args(*, hide_dirs, hide_files, workdir: str | None, expose=()) -> list[str]:
    """bwrap's arguments (after its path, before the command): read-only root, own /dev, /proc, /tmp,
    the hidden paths empty, the job's directory writable. The network stays (jobs reach the gateway)."""
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc",
            "--perms", "1777", "--tmpfs", "/tmp", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    for device in sorted(Path("/dev").glob("nvidia*")) + [Path("/dev/dri")]:
        args += ["--dev-bind-try", str(device), str(device)]
    emptied = [Path("/tmp")]
    made: set[Path] = set()

    def way(target: Path) -> None:  # directories on the way through emptied ones: passable, never listable
        for parent in reversed(target.parents):
            if parent not in made and any(parent != e and parent.is_relative_to(e) for e in emptied):
                args.extend(["--perms", "0711", "--dir", str(parent)])
                made.add(parent)

    for directory in map(Path, hide_dirs):
        way(directory)
        args += ["--perms", "0711", "--tmpfs", str(directory)]
        emptied.append(directory)
    for name in map(Path, hide_files):
        # SQLite's -wal and -shm files come and go with the server's connections: one present when the job
        # was planned may be gone now, and bwrap cannot bind over a path that does not exist (a read-only
        # root). Such a file, made again later, is the server's alone (SQLite gives it the database's mode).
        if not os.path.lexists(name):
            continue
        if not any(name.is_relative_to(e) for e in emptied):
            args += ["--ro-bind", "/dev/null", str(name)]
    for path in map(Path, expose):
        way(path)
        args += ["--ro-bind", str(path), str(path)]
    if workdir is not None:
        way(Path(workdir))
        args += ["--bind", workdir, workdir, "--chdir", workdir]
    return args


def drop_args(uid: int, gid: int) -> list[str]:
    """setpriv's command line that becomes ``uid``/``gid`` with no capabilities and no way back."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def job_environment(*, user: str, workdir: str, own: dict[str, str]) -> dict[str, str]:
    """The whole environment of a job: a sane PATH/HOME/LANG and its own variables; nothing of the server's."""
    env = {"PATH": SAFE_PATH, "HOME": workdir, "LANG": "C.UTF-8", "USER": user, "LOGNAME": user,
           "SHELL": "/bin/bash", "TMPDIR": "/tmp"}
    env.update(own)
    return env
