"""A fake of our AccountManager protocol (compute/slurm.py's Sacctmgr): it applies sacctmgr's commands and
load files to an in-memory association table as Slurm does (accounts, parents, users, GrpTRESMins), so that
re-syncing can be checked. Shared by tests/integration/compute/test_sync.py and bench/slurm_sync.py."""

from __future__ import annotations


class MemorySacctmgr:
    """sacctmgr's effect on the association table, in memory; counts processes as sacctmgr runs would."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[str]] = {("root", ""): ["", ""], ("root", "root"): ["", ""]}
        self.processes = 0

    def associations(self):
        self.processes += 1
        return [(a, u, p, limit) for (a, u), (p, limit) in self.rows.items()]

    def _load(self, lines):
        parent = None
        for line in lines:
            kind, _, rest = line.partition(" - ")
            name, _, opts = rest.partition(":")
            name = name.strip("'")
            if kind == "Parent":
                parent = name
            elif kind == "Account":
                row = self.rows.setdefault((name, ""), [parent, ""])
                if opts.startswith("GrpTRESMins="):
                    row[1] = opts.removeprefix("GrpTRESMins=")
            elif kind == "User":
                self.rows.setdefault((parent, name), ["", ""])

    def apply(self, commands, load):
        self.processes += 1
        for c in commands:  # what a plan sends as commands: moves and removals
            opts = dict(w.split("=", 1) for w in c if "=" in w)
            if c[:2] == ["modify", "account"] and "parent" in opts:
                for name in opts["name"].split(","):
                    self.rows[(name, "")][0] = opts["parent"]
            elif c[:2] == ["delete", "user"]:
                for account in opts["account"].split(","):
                    for user in opts["name"].split(","):
                        del self.rows[(account, user)]
            else:
                raise AssertionError(f"unexpected command {c}")
        self._load(load)  # as the adapter: commands first, then the load file
        return []
