"""Where jaif cannot change user (it runs as an ordinary user), local jobs are refused, unless the
single-user opt-in lets them run as that user: still with a clean environment, limits and (where
bubblewrap works) the sandbox. Run for real as an unprivileged user (``nobody``, by setpriv)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from jaif.compute.isolation import Isolation, sandbox_args, unreachable
from jaif.config import ComputeSettings
from jaif.errors import Unavailable

ROOT = Path(__file__).parents[3]
AS_NOBODY = """
import json, sys, time
from pathlib import Path
from jaif.compute.isolation import Isolation
from jaif.compute.local import LocalScheduler
from jaif.compute.scheduler import JobRequest
from jaif.config import ComputeSettings
from jaif.errors import Unavailable

base, single = Path(sys.argv[1]), sys.argv[2] == "1"
isolation = Isolation(ComputeSettings(local_single_user=single), data_dir=base / "var", jobs_dir=base / "jobs")
local = LocalScheduler(base / "jobs" / ".local", gpus=1, isolation=isolation, minute_s=1.0)
workdir = base / "jobs" / "lab" / ("w1" if single else "w0")
workdir.mkdir(parents=True)
(workdir / "job.sh").write_text("echo uid=$(id -u)\\nenv\\ncat " + str(base / "var" / "secret") + " 2>&1\\nexit 0\\n")
request = JobRequest(name="j", account="lab", partition="local", nodes=1, gpus_per_node=0, time_limit_min=30,
                     script=workdir / "job.sh", workdir=workdir)
try:
    job_id = local.submit(request)
except Unavailable as exc:
    print(json.dumps({"refused": exc.message}))
    sys.exit()
while not local.status([job_id])[job_id].state.finished:
    time.sleep(0.1)
status = local.status([job_id])[job_id]
print(json.dumps({"state": status.state.value, "stdout": request.stdout.read_text()}))
"""


def python_for(uid: int, gid: int) -> str:
    """This interpreter, or the system's of the same version where ``uid`` may not reach this one (a
    pyenv under /root); the packages come from PYTHONPATH either way."""
    if unreachable(Path(os.path.realpath(sys.executable)), uid, gid) is None:
        return sys.executable
    return f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


def as_nobody(base: Path, single: bool) -> dict:
    nobody = pwd.getpwnam("nobody")
    path = os.pathsep.join([str(ROOT / "src"), *site.getsitepackages()])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": path, "JAIF_DATABASE_URL": "postgresql://canary"}
    proc = subprocess.run(
        ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--",
         python_for(nobody.pw_uid, nobody.pw_gid), "-c", AS_NOBODY, str(base), "1" if single else "0"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become nobody")
def test_as_an_ordinary_user_local_jobs_are_refused_unless_the_single_user_opt_in(tmp_path):
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="jaif-nobody-", dir="/var/tmp"))
    try:
        (base / "var").mkdir()
        (base / "var" / "secret").write_text("var-secret")
        for path in (base, base / "var", base / "var" / "secret"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        refused = as_nobody(base, single=False)
        assert "local jobs are refused: jaif runs as nobody, not root" in refused["refused"]
        assert "JAIF_COMPUTE__LOCAL_SINGLE_USER=true" in refused["refused"]
        ran = as_nobody(base, single=True)
        assert ran["state"] == "completed", ran
        assert f"uid={nobody.pw_uid}\n" in ran["stdout"]
        assert "JAIF_DATABASE_URL" not in ran["stdout"] and "canary" not in ran["stdout"]
        if shutil.which("bwrap"):  # sandboxed as the same user: var/ is hidden all the same
            assert "var-secret" not in ran["stdout"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_way_to_a_directory_stops_at_the_first_one_closed():
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="jaif-way-", dir="/var/tmp"))  # /var/tmp and above: passable
    try:
        base.chmod(0o755)
        inner = base / "closed" / "inner"
        inner.mkdir(parents=True)
        (base / "closed").chmod(0o700)
        assert unreachable(inner, nobody.pw_uid, nobody.pw_gid) == base / "closed"
        assert unreachable(inner, nobody.pw_uid, nobody.pw_gid, stop_at=(base / "closed",)) is None
        (base / "closed").chmod(0o711)  # passable, never listable
        assert unreachable(inner, nobody.pw_uid, nobody.pw_gid) is None
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_sandbox_hides_the_servers_paths_and_binds_only_the_jobs_directory():
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))  # not under /tmp, which the sandbox empties anyway
    db = base / "db.sqlite"
    db.write_bytes(b"")
    # db.sqlite-wal was there when the job was planned and is gone now (the server's last connection
    # closed): bwrap could not bind over it, so it is left out rather than failing the job.
    args = sandbox_args(hide_dirs=("/srv/jaif/var", "/srv/jaif/var/jobs"), hide_files=(str(db), f"{db}-wal"),
                        workdir="/srv/jaif/var/jobs/lab/w1")
    joined = " ".join(args)
    assert "--ro-bind / /" in joined and "--tmpfs /srv/jaif/var " in joined + " "
    assert "--tmpfs /srv/jaif/var/jobs" in joined and f"--ro-bind /dev/null {db} " in joined
    assert f"{db}-wal" not in joined
    assert "--dir /srv/jaif/var/jobs/lab" in joined  # the way to the job's own directory, passable
    work = "/srv/jaif/var/jobs/lab/w1"
    assert joined.endswith(f"--bind {work} {work} --chdir {work}")
    assert "--unshare-pid" in args and "--unshare-net" not in args  # jobs reach the gateway
    shutil.rmtree(base)


def test_an_isolation_without_bwrap_is_said_once_and_required_sandboxes_refuse(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("jaif.compute.isolation.probe_bwrap", lambda: (None, "bubblewrap (bwrap) is not installed"))
    auto = Isolation(ComputeSettings(sandbox="auto"), data_dir=tmp_path / "var", jobs_dir=tmp_path / "jobs")
    with caplog.at_level("WARNING"):
        assert auto.bwrap() is None and auto.bwrap() is None
    assert [r.message for r in caplog.records if "WITHOUT a sandbox" in r.message] != []
    assert len([r for r in caplog.records if "WITHOUT a sandbox" in r.message]) == 1
    required = Isolation(ComputeSettings(sandbox="bwrap"), data_dir=tmp_path / "var", jobs_dir=tmp_path / "jobs")
    with pytest.raises(Unavailable, match="compute.sandbox is bwrap, but bubblewrap does not work here"):
        required.bwrap()
    assert Isolation(ComputeSettings(sandbox="off"), data_dir=tmp_path, jobs_dir=tmp_path).bwrap() is None
