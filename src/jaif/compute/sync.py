"""Allocation -> Slurm sync: desired accounts and associations from jaif, actual ones from sacctmgr,
a plan of batched sacctmgr commands that makes Slurm match, and a drift report (ColdFront style).

Desired, for every project that has (or had) a GPU-hour allocation:
- an account per organisation (``slurm.org_account_prefix`` + name) under ``slurm.parent_account``;
- a project account under it with ``GrpTRESMins=gres/gpu=<minutes>``: 60 x (what its active allocations
  grant + what its ended ones used), rounded up, since Slurm counts the account's usage from its creation; 0 when
  no allocation is active (expired, exhausted, revoked: new GPU jobs pend with AssocGrpGRESMinutes);
- an association per member with a Slurm user name (``jaif slurm user``), and one for the submit user.
Accounts jaif manages are the organisation accounts under the parent and the accounts under those.
jaif never deletes an account: accounts it does not expect are reported. Associations of people who
left a project are removed. A second sync finds nothing to do.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import Organisation, Project, ProjectMember
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service as allocations
from jaif.compute.backend import Compute
from jaif.compute.models import SlurmUser
from jaif.compute.naming import org_account, project_account
from jaif.compute.plan import Actual, Desired, DesiredAccount, Plan, make_plan
from jaif.db.base import utcnow
from jaif.errors import Conflict, InvalidRequest

_USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def _limit(allocs: list, now: datetime) -> tuple[int, str]:
    """(GPU-minutes, why blocked or "") for one project's GPU-hour allocations."""
    active = [a for a in allocs if a.status == "active" and a.starts_at <= now < a.ends_at and a.used < a.amount]
    ended_used = sum(a.used for a in allocs if a not in active)
    if active:
        return math.ceil(60 * (sum(a.amount for a in active) + ended_used) - 1e-6), ""
    latest = max(allocs, key=lambda a: (a.ends_at, a.created_at))
    if latest.status == "revoked":
        why = "revoked"
    elif latest.used >= latest.amount or latest.status == "exhausted":
        why = "exhausted"
    elif latest.starts_at > now:
        why = "not started"
    else:
        why = "expired"
    return 0, why


def desired_state(session: Session, compute: Compute, now: datetime | None = None) -> Desired:
    now = now or utcnow()
    s = compute.settings.slurm
    by_project: dict[str, list] = defaultdict(list)
    for allocation in allocations.list_allocations(session=session, actor=CLI_ACTOR, resource="gpu_hours"):
        by_project[allocation.project_id].append(allocation)
    desired = Desired()
    if not by_project:
        return desired
    rows = session.execute(
        select(Project.id, Project.name, Organisation.name)
        .join(Organisation, Organisation.id == Project.organisation_id)
        .where(Project.id.in_(list(by_project)))
    ).all()
    members: dict[str, set[str]] = defaultdict(set)
    for project_id, username in session.execute(
        select(ProjectMember.project_id, SlurmUser.username)
        .join(SlurmUser, SlurmUser.user_id == ProjectMember.user_id)
        .where(ProjectMember.project_id.in_(list(by_project)))
    ):
        members[project_id].add(username)
    desired.unnamed = _unnamed(session, list(by_project))
    for project_id, project_name, org_name in rows:
        org = org_account(org_name, s.org_account_prefix)
        desired.accounts.setdefault(org, DesiredAccount(org, s.parent_account, None, org_name))
        limit, blocked = _limit(by_project[project_id], now)
        account = project_account(project_name)
        desired.accounts[account] = DesiredAccount(account, org, limit, project_name, blocked)
        desired.users[account] = members[project_id] | {compute.submit_user}
    return desired


def _unnamed(session: Session, project_ids: list[str]) -> int:
    """Members of these projects without a Slurm user name: they get no association."""
    named = select(SlurmUser.user_id)
    return len(
        set(
            session.scalars(
                select(ProjectMember.user_id).where(
                    ProjectMember.project_id.in_(project_ids), ProjectMember.user_id.not_in(named)
                )
            )
        )
    )


def _gpu_minutes(limits: str) -> int | None:
    for item in limits.split(","):
        key, _, value = item.partition("=")
        if key == "gres/gpu" and value.isdigit():
            return int(value)
    return None


def actual_state(rows: list[tuple[str, str, str, str]], prefix: str, parent: str) -> Actual:
    """What Slurm has, limited to jaif's part: organisation accounts under ``parent``, their children."""
    accounts = {a: (p, _gpu_minutes(limits)) for a, user, p, limits in rows if not user}
    orgs = {a for a, (p, _l) in accounts.items() if p == parent and a.startswith(prefix)}
    managed = orgs | {a for a, (p, _l) in accounts.items() if p in orgs}
    actual = Actual(all_accounts=accounts, managed=managed, orgs=orgs)
    for account, user, _p, _limits in rows:
        if user:
            actual.users[account].add(user)
    return actual


@dataclass
class SyncResult:
    plan: Plan
    dry_run: bool
    errors: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    processes: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run, "commands": [" ".join(c) for c in self.plan.commands], "load": self.plan.load,
            "changes": self.plan.changes, "drift": self.plan.drift, "blocked": self.plan.blocked,
            "unnamed_members": self.plan.unnamed, "errors": self.errors, "remaining": self.remaining,
            "sacctmgr_processes": self.processes, "note": self.note,
        }

    def lines(self, *, dry_run: bool) -> list[str]:
        if self.note:
            return [self.note]
        out = [("plan (dry run, nothing changed):" if dry_run else "changes:") if self.plan.changes else
               "Slurm matches jaif: nothing to do"]
        out += [f"  {c}" for c in self.plan.changes]
        if dry_run and self.plan.commands:
            out += ["sacctmgr commands:"] + [f"  sacctmgr -i {' '.join(c)}" for c in self.plan.commands]
        if dry_run and self.plan.load:
            out += ["sacctmgr -i load file=FILE, with FILE:"] + [f"  {line}" for line in self.plan.load]
        out += [f"blocked: {b}" for b in self.plan.blocked]
        out += [f"drift: {d}" for d in self.plan.drift]
        if self.plan.unnamed:
            out.append(f"{self.plan.unnamed} project members have no Slurm user name (`jaif slurm user EMAIL NAME`)")
        out += [f"error: {e}" for e in self.errors] + [f"still different: {r}" for r in self.remaining]
        calls = len(self.plan.commands) + bool(self.plan.load)
        out.append(f"{calls} sacctmgr calls ({len(self.plan.commands)} commands"
                   f"{', 1 load file of ' + str(len(self.plan.load)) + ' lines' if self.plan.load else ''}) "
                   f"in {self.processes} sacctmgr processes")
        return out


def sync(*, session: Session, compute: Compute, dry_run: bool = False) -> SyncResult:
    """Plan, and unless ``dry_run`` apply in one batch, then re-read to confirm Slurm matches."""
    if compute.accounts is None:
        return SyncResult(Plan(), dry_run, note=f"the {compute.scheduler.kind} executor has no accounts to sync")
    s = compute.settings.slurm
    desired = desired_state(session, compute)
    actual = actual_state(compute.accounts.associations(), s.org_account_prefix, s.parent_account)
    plan = make_plan(desired, actual, cluster=s.cluster)
    result = SyncResult(plan, dry_run, processes=1)
    if dry_run or not (plan.commands or plan.load):
        return result
    result.errors = compute.accounts.apply(plan.commands, plan.load)
    after = actual_state(compute.accounts.associations(), s.org_account_prefix, s.parent_account)
    result.processes = 2 + bool(plan.commands) + bool(plan.load)
    result.remaining = make_plan(desired, after, cluster=s.cluster).changes
    return result


def set_username(*, session: Session, email: str, username: str | None) -> str | None:
    """Give a jaif user their Slurm user name (None removes it). The next sync adds their associations."""
    user = access.get_user(session=session, email=email)
    row = session.get(SlurmUser, user.id)
    if username is None:
        if row is not None:
            session.delete(row)
        return None
    if not _USERNAME.match(username):
        raise InvalidRequest("a Slurm user name is lower-case letters, digits, _ . - (at most 32)", param="username")
    taken = session.scalar(select(SlurmUser).where(SlurmUser.username == username, SlurmUser.user_id != user.id))
    if taken is not None:
        raise Conflict(f"the Slurm user name {username} belongs to another jaif user already", param="username")
    if row is None:
        session.add(SlurmUser(user_id=user.id, username=username))
    else:
        row.username = username
    session.flush()
    return username
