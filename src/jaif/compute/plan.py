"""The sync plan: from desired and actual Slurm state to as few sacctmgr calls as Slurm allows.

Additions (accounts, associations) and GrpTRESMins changes go into one ``sacctmgr load`` file, which
Slurm applies in a single commit however many lines it has (each sacctmgr command commits on its own:
about 0.7 s each on the test cluster). Slurm's load adds what is missing and changes limits, never
removes. What load cannot do (move an account to another parent, remove a user's association) becomes
sacctmgr commands, grouped where one command can name many (``delete user where name=u,v account=a``).
Pure functions: nothing here runs a command.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MAX_LINE = 3000


@dataclass(frozen=True)
class DesiredAccount:
    name: str
    parent: str
    limit: int | None  # GrpTRESMins gres/gpu in minutes; None: not managed (organisation accounts)
    label: str  # the project's or organisation's name
    blocked: str = ""  # why new jobs are held: expired | exhausted | revoked | not started


@dataclass
class Desired:
    accounts: dict[str, DesiredAccount] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=dict)
    unnamed: int = 0


@dataclass
class Actual:
    all_accounts: dict[str, tuple[str, int | None]]  # name -> (parent, gres/gpu minutes)
    managed: set[str]
    orgs: set[str]
    users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


@dataclass
class Plan:
    commands: list[list[str]] = field(default_factory=list)  # sacctmgr -i <command>, run first
    load: list[str] = field(default_factory=list)  # lines of a sacctmgr load file, without the Cluster line
    changes: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    unnamed: int = 0


def _chunks(names: Iterable[str], room: int) -> Iterator[str]:
    """Comma-joined groups of ``names``, each at most ``room`` characters."""
    group: list[str] = []
    size = 0
    for name in sorted(names):
        if group and size + len(name) + 1 > room:
            yield ",".join(group)
            group, size = [], 0
        group.append(name)
        size += len(name) + 1
    if group:
        yield ",".join(group)


def _minutes(limit: int | None) -> str:
    return "none" if limit is None else f"{limit} GPU-minutes"


def _accounts(desired: Desired, actual: Actual, plan: Plan, cluster: list[str]) -> dict[str, list[str]]:
    """Plan the accounts; returns the load file's account lines by parent."""
    under: dict[str, list[str]] = defaultdict(list)
    moves: dict[str, list[str]] = defaultdict(list)
    for acc in desired.accounts.values():
        if acc.blocked:
            plan.blocked.append(f"{acc.name} (project {acc.label}): allocation {acc.blocked}, GrpTRESMins=gres/gpu=0")
        line = f"Account - '{acc.name}'" + (f":GrpTRESMins=gres/gpu={acc.limit}" if acc.limit is not None else "")
        if acc.name not in actual.all_accounts:
            under[acc.parent].append(line)
            what = "project" if acc.limit is not None else "organisation"
            plan.changes.append(f"add account {acc.name} ({what} {acc.label}) under {acc.parent}"
                                + (f", GrpTRESMins=gres/gpu={acc.limit}" if acc.limit is not None else ""))
            plan.drift.append(f"jaif expects account {acc.name} ({acc.label}); Slurm has none")
            continue
        parent, limit = actual.all_accounts[acc.name]
        if parent != acc.parent:
            moves[acc.parent].append(acc.name)
            plan.changes.append(f"move account {acc.name} from {parent} to {acc.parent}")
            plan.drift.append(f"account {acc.name} is under {parent} in Slurm; jaif expects {acc.parent}")
        if acc.limit is not None and limit != acc.limit:
            under[acc.parent].append(line)
            plan.changes.append(f"set GrpTRESMins of {acc.name} from {_minutes(limit)} to {acc.limit} GPU-minutes")
            plan.drift.append(f"account {acc.name} has {_minutes(limit)} in Slurm; jaif expects {acc.limit}")
    for parent, names in sorted(moves.items()):
        for group in _chunks(names, MAX_LINE - 200):
            plan.commands.append(["modify", "account", "where", f"name={group}", *cluster, "set", f"parent={parent}"])
    return under


def _users(desired: Desired, actual: Actual, plan: Plan, cluster: list[str]) -> dict[str, list[str]]:
    """Plan the associations; returns the load file's user lines by account."""
    under: dict[str, list[str]] = {}
    removing: dict[frozenset[str], list[str]] = defaultdict(list)
    for account, users in desired.users.items():
        have = actual.users.get(account, set())
        missing, extra = users - have, have - users
        if missing:
            under[account] = [f"User - '{u}'" for u in sorted(missing)]
            plan.changes += [f"add user {u} to account {account}" for u in sorted(missing)]
            plan.drift += [f"jaif expects user {u} in account {account}; Slurm has no association"
                           for u in sorted(missing)]
        if extra and account in actual.all_accounts:
            removing[frozenset(extra)].append(account)
            plan.changes += [f"remove user {u} from account {account}" for u in sorted(extra)]
            plan.drift += [f"Slurm has user {u} in account {account}; jaif does not expect it" for u in sorted(extra)]
    half = (MAX_LINE - 200) // 2
    for leaving, accounts in sorted(removing.items(), key=lambda kv: sorted(kv[1])):
        for user_group in _chunks(leaving, half):
            for account_group in _chunks(accounts, half):
                plan.commands.append(
                    ["delete", "user", "where", f"name={user_group}", f"account={account_group}", *cluster]
                )
    return under


def _load(parents: list[str], accounts: dict[str, list[str]], users: dict[str, list[str]]) -> list[str]:
    """The load file: accounts by parent, parents before children, then associations by account."""
    lines: list[str] = []
    for parent in parents + sorted(set(accounts) - set(parents)):
        if accounts.get(parent):
            lines += [f"Parent - '{parent}'", *accounts[parent]]
    for account in sorted(users):
        lines += [f"Parent - '{account}'", *users[account]]
    return lines


def make_plan(desired: Desired, actual: Actual, *, cluster: str | None = None) -> Plan:
    plan = Plan(unnamed=desired.unnamed)
    where = [f"cluster={cluster}"] if cluster else []
    accounts = _accounts(desired, actual, plan, where)
    users = _users(desired, actual, plan, where)
    # organisation accounts (parent: the root of jaif's tree) come before the project accounts under them
    roots = sorted({a.parent for a in desired.accounts.values() if a.limit is None})
    plan.load = _load(roots, accounts, users)
    for account in sorted(actual.managed - set(desired.accounts)):
        parent = actual.all_accounts[account][0]
        kind = "organisation account" if account in actual.orgs else "account"
        plan.drift.append(f"Slurm has {kind} {account} under {parent}; jaif has nothing for it (left as it is)")
    return plan
