"""Slurm account sync at scale: 1,000 projects with 10,000 members; plan in at most 5 s, and how many
sacctmgr calls it issues.

    .venv/bin/python bench/slurm_sync.py [--projects 1000] [--members 10] [--orgs 100] [--slurm-conf PATH]

Builds the projects (each with a GPU-hour allocation and members with Slurm user names) in a fresh
SQLite database, then times ``jaif slurm sync``'s plan (desired state from the database, actual from
sacctmgr, the diff into batched commands) against an empty Slurm, and the re-plan once Slurm matches.
Slurm is an in-memory stand-in that applies sacctmgr's commands; with ``--slurm-conf`` (the test
cluster of scripts/slurm/cluster.py) the plan is also applied to the real Slurm and the second sync
checked to find nothing to do. Writes the figures into bench/RESULTS.md (compute section).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))  # the repository: tests.support
from compute_results import write  # noqa: E402
from tests.support.sacctmgr import MemorySacctmgr  # noqa: E402

import jaif.db.models  # noqa: E402,F401
from jaif.access.models import Organisation, Project, ProjectMember, User  # noqa: E402
from jaif.allocations.models import Allocation  # noqa: E402
from jaif.compute import sync  # noqa: E402
from jaif.compute.backend import Compute  # noqa: E402
from jaif.compute.models import SlurmUser  # noqa: E402
from jaif.config import Settings  # noqa: E402
from jaif.db.base import new_id  # noqa: E402
from jaif.db.engine import make_engine, make_session_factory, transaction  # noqa: E402
from jaif.db.migrate import upgrade  # noqa: E402


class Scheduler:
    kind, cluster = "slurm", "bench"

    def partitions(self):
        return None


def build(url: str, projects: int, members: int, orgs: int) -> None:
    upgrade(url)
    now = datetime.now(UTC)
    org_rows = [{"id": new_id(), "name": f"Organisation {i}", "sector": "academia", "country": "DE", "created_at": now}
                for i in range(orgs)]
    project_rows, user_rows, member_rows, name_rows, allocation_rows = [], [], [], [], []
    for i in range(projects):
        pid = new_id()
        project_rows.append({"id": pid, "name": f"proj{i:04d}", "organisation_id": org_rows[i % orgs]["id"],
                             "description": "", "is_active": True, "tokens_spent": 0, "tokens_leased": 0,
                             "tokens_attributed": 0, "created_at": now})
        allocation_rows.append({"id": new_id(), "project_id": pid, "resource": "gpu_hours", "partition": "gpu",
                                "amount": 1000.0 + i, "used": 0.0, "starts_at": now - timedelta(days=1),
                                "ends_at": now + timedelta(days=365), "status": "active", "created_at": now})
        for j in range(members):
            uid = new_id()
            user_rows.append({"id": uid, "email": f"u{i}-{j}@example.org", "name": "", "role": "user",
                              "is_active": True, "created_at": now})
            name_rows.append({"user_id": uid, "username": f"u{i:04d}{j:02d}", "created_at": now})
            member_rows.append({"id": new_id(), "project_id": pid, "user_id": uid, "role": "member", "created_at": now})
    engine = make_engine(url)
    with engine.begin() as conn:
        for model, rows in ((Organisation, org_rows), (Project, project_rows), (User, user_rows),
                            (ProjectMember, member_rows), (SlurmUser, name_rows), (Allocation, allocation_rows)):
            conn.execute(insert(model), rows)
    engine.dispose()


def timed_sync(factory, compute, *, dry_run: bool):
    t0 = time.perf_counter()
    with transaction(factory) as session:
        result = sync.sync(session=session, compute=compute, dry_run=dry_run)
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--members", type=int, default=10, help="members per project")
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--slurm-conf", type=Path, default=None, help="also apply to this real Slurm")
    args = parser.parse_args()
    rows, applied_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        build(url, args.projects, args.members, args.orgs)
        factory = make_session_factory(make_engine(url))
        settings = Settings(database_url=url, data_dir=Path(tmp), slurm={"submit_user": "jaifsvc"})
        memory = MemorySacctmgr()
        compute = Compute(settings, Scheduler(), memory)
        plan, took = timed_sync(factory, compute, dry_run=True)
        calls = len(plan.plan.commands) + bool(plan.plan.load)
        _applied, _ = timed_sync(factory, compute, dry_run=False)
        again, again_took = timed_sync(factory, compute, dry_run=True)
        assert again.plan.commands == [] and again.plan.load == [], again.plan.changes[:5]
        size = f"{args.projects:,} projects, {args.projects * args.members:,} members, {args.orgs} organisations"
        print(f"{size}: plan {took:.2f} s: {calls} sacctmgr calls ({len(plan.plan.commands)} commands, a load file "
              f"of {len(plan.plan.load):,} lines), {len(plan.plan.changes):,} changes; re-plan once Slurm matches "
              f"{again_took:.2f} s, nothing to do")
        rows += [
            f"| sync plan from an empty Slurm, {size} | {took:.2f} s; {calls} sacctmgr call: one `sacctmgr load` "
            f"file of {len(plan.plan.load):,} lines for {len(plan.plan.changes):,} changes (+1 call to read the "
            f"associations) | ≤ 5 s, fewer calls better | {{when}} |",
            f"| sync plan again once Slurm matches | {again_took:.2f} s; 0 calls to change, 1 to read "
            f"| idempotent | {{when}} |",
        ]
        if args.slurm_conf:
            from jaif.compute.slurm import Sacctmgr, SlurmTools

            settings.slurm.conf = args.slurm_conf
            settings.slurm.command_timeout_s = 3600
            real = Compute(settings, Scheduler(), Sacctmgr(SlurmTools(settings.slurm)))
            done, applied = timed_sync(factory, real, dry_run=False)
            second, second_took = timed_sync(factory, real, dry_run=True)
            print(f"real Slurm: applied in {applied:.1f} s ({len(done.errors)} errors, {len(done.remaining)} left); "
                  f"second sync {second_took:.2f} s, {len(second.plan.changes)} changes")
            applied_rows.append(
                f"| sync applied to the real test Slurm (22.05, slurmdbd on MariaDB), {size} | {applied:.1f} s "
                f"(read, load, read back: {done.processes} sacctmgr processes; {len(done.errors)} errors, "
                f"{len(done.remaining)} differences left); the next sync: {len(second.plan.changes)} changes, "
                f"{second_took:.2f} s | matches the plan | {{when}} |"
            )
    command = "python bench/slurm_sync.py " + " ".join(sys.argv[1:])
    write("sync plan", rows, command)
    if applied_rows:
        write("sync applied", applied_rows, command)


if __name__ == "__main__":
    main()
