"""The sync plan: batched sacctmgr commands, idempotence, drift, blocked accounts (pure functions)."""

from __future__ import annotations

from jaif.compute.plan import MAX_LINE, Actual, Desired, DesiredAccount, make_plan
from jaif.compute.sync import actual_state


def desired(projects: int = 2, users_per_project: int = 2, limit: int = 600) -> Desired:
    d = Desired()
    d.accounts["org_uni"] = DesiredAccount("org_uni", "root", None, "Uni")
    for i in range(projects):
        name = f"p{i}"
        d.accounts[name] = DesiredAccount(name, "org_uni", limit, name)
        d.users[name] = {f"u{i}_{j}" for j in range(users_per_project)} | {"svc"}
    return d


def rows_after(d: Desired) -> list[tuple[str, str, str, str]]:
    """What sacctmgr would list once Slurm matches ``d``."""
    rows = [("root", "", "", ""), ("root", "root", "", "")]
    for acc in d.accounts.values():
        rows.append((acc.name, "", acc.parent, f"gres/gpu={acc.limit}" if acc.limit is not None else ""))
    for account, users in d.users.items():
        rows += [(account, u, "", "") for u in users]
    return rows


def test_from_nothing_everything_goes_into_one_load_file():
    d = desired(projects=3, users_per_project=2)
    plan = make_plan(d, actual_state(rows_after(Desired()), "org_", "root"))
    assert plan.commands == []
    assert plan.load == [
        "Parent - 'root'", "Account - 'org_uni'",
        "Parent - 'org_uni'", "Account - 'p0':GrpTRESMins=gres/gpu=600", "Account - 'p1':GrpTRESMins=gres/gpu=600",
        "Account - 'p2':GrpTRESMins=gres/gpu=600",
        "Parent - 'p0'", "User - 'svc'", "User - 'u0_0'", "User - 'u0_1'",
        "Parent - 'p1'", "User - 'svc'", "User - 'u1_0'", "User - 'u1_1'",
        "Parent - 'p2'", "User - 'svc'", "User - 'u2_0'", "User - 'u2_1'",
    ]
    assert len(plan.changes) == 1 + 3 + 9


def test_a_matching_slurm_needs_nothing():
    d = desired()
    plan = make_plan(d, actual_state(rows_after(d), "org_", "root"))
    assert plan.commands == [] and plan.changes == []


def test_limits_are_changed_by_the_load_file_and_blocked_accounts_get_zero():
    d = desired(projects=4)
    actual = actual_state(rows_after(d), "org_", "root")
    d.accounts["p0"] = DesiredAccount("p0", "org_uni", 0, "p0", blocked="expired")
    d.accounts["p1"] = DesiredAccount("p1", "org_uni", 0, "p1", blocked="exhausted")
    d.accounts["p2"] = DesiredAccount("p2", "org_uni", 1200, "p2")
    plan = make_plan(d, actual)
    assert plan.commands == []
    assert plan.load == ["Parent - 'org_uni'", "Account - 'p0':GrpTRESMins=gres/gpu=0",
                         "Account - 'p1':GrpTRESMins=gres/gpu=0", "Account - 'p2':GrpTRESMins=gres/gpu=1200"]
    assert plan.blocked == [
        "p0 (project p0): allocation expired, GrpTRESMins=gres/gpu=0",
        "p1 (project p1): allocation exhausted, GrpTRESMins=gres/gpu=0",
    ]


def test_people_who_left_lose_their_association_and_unknown_accounts_are_only_reported():
    d = desired(projects=2)
    rows = rows_after(d) + [("p0", "mallory", "", ""), ("old", "", "org_uni", "gres/gpu=5"), ("other", "", "root", "")]
    plan = make_plan(d, actual_state(rows, "org_", "root"))
    assert [" ".join(c) for c in plan.commands] == ["delete user where name=mallory account=p0"]
    assert "Slurm has user mallory in account p0; jaif does not expect it" in plan.drift
    assert "Slurm has account old under org_uni; jaif has nothing for it (left as it is)" in plan.drift
    assert not any("other" in line for line in plan.drift)  # not under a jaif organisation account


def test_a_moved_account_is_moved_back():
    d = desired(projects=1)
    rows = [r if r[0] != "p0" or r[1] else ("p0", "", "elsewhere", "gres/gpu=600") for r in rows_after(d)]
    plan = make_plan(d, actual_state(rows, "org_", "root"))
    assert [" ".join(c) for c in plan.commands] == ["modify account where name=p0 set parent=org_uni"]


def test_removals_of_many_are_split_and_name_the_cluster():
    d = desired(projects=1000, users_per_project=1)
    rows = rows_after(d) + [(f"p{i}", "gone", "", "") for i in range(1000)]
    plan = make_plan(d, actual_state(rows, "org_", "root"), cluster="jupiter")
    assert plan.load == []
    assert len(plan.commands) > 1 and all(c[:4] == ["delete", "user", "where", "name=gone"] for c in plan.commands)
    assert sum(len(c[4].removeprefix("account=").split(",")) for c in plan.commands) == 1000
    assert all(len(" ".join(c)) <= MAX_LINE and "cluster=jupiter" in c for c in plan.commands)


def test_actual_state_reads_gpu_minutes_among_other_limits():
    actual = actual_state([("org_a", "", "root", ""), ("p", "", "org_a", "cpu=10,gres/gpu=42")], "org_", "root")
    assert actual.all_accounts["p"] == ("org_a", 42) and actual.managed == {"org_a", "p"}
    assert isinstance(actual, Actual)
