"""What the compute services work with: the settings, the scheduler and (under Slurm) the account
manager, built from Settings by ``make_compute`` (create_app, the CLI) and passed down."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from jaif.compute.isolation import Isolation
from jaif.compute.scheduler import Scheduler
from jaif.compute.site import Partition, resolve
from jaif.config import Settings


class AccountManager(Protocol):
    """Slurm's account database (sacctmgr): read the associations, apply commands in a batch."""

    def associations(self) -> list[tuple[str, str, str, str]]:
        """(account, user, parent, GrpTRESMins) per association; user is "" for an account's own."""
        ...

    def apply(self, commands: list[list[str]], load: list[str]) -> list[str]:
        """Run the sacctmgr commands (argv after ``sacctmgr -i``), then load the lines (a ``sacctmgr load``
        file without its Cluster line); returns the errors Slurm printed."""
        ...


@dataclass
class Compute:
    settings: Settings
    scheduler: Scheduler
    accounts: AccountManager | None = None
    isolation: Isolation | None = None  # the local executor's (None under Slurm)
    _partitions: dict[str, Partition] | None = field(default=None, repr=False)

    @property
    def jobs_dir(self) -> Path:
        return (self.settings.compute.jobs_dir or self.settings.data_dir / "jobs").absolute()

    @property
    def submit_user(self) -> str:
        return self.settings.slurm.submit_user or getpass.getuser()

    def partitions(self) -> dict[str, Partition]:
        """The site's partitions: what the scheduler reports, completed by the site profile (read once)."""
        if self._partitions is None:
            self._partitions = resolve(self.settings.compute, self.scheduler.partitions())
        return self._partitions


def make_compute(settings: Settings) -> Compute:
    """The scheduler ``settings.scheduler`` names. Builds objects only: no process is started here."""
    if settings.scheduler == "slurm":
        from jaif.compute.slurm import Sacctmgr, SlurmScheduler, SlurmTools

        tools = SlurmTools(settings.slurm)
        return Compute(settings, SlurmScheduler(tools), Sacctmgr(tools))
    from jaif.compute.local import LocalScheduler

    compute_dir = (settings.compute.jobs_dir or settings.data_dir / "jobs").absolute()
    isolation = make_isolation(settings)
    scheduler = LocalScheduler(compute_dir / ".local", gpus=settings.compute.local_gpus, isolation=isolation,
                               max_processes=settings.compute.local_max_processes)
    return Compute(settings, scheduler, isolation=isolation)


def make_isolation(settings: Settings) -> Isolation:
    """How local jobs are kept from this server: its var/, jobs directory and SQLite database file."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    database = Path(url.database).absolute() if url.get_backend_name() == "sqlite" and url.database else None
    return Isolation(settings.compute, data_dir=settings.data_dir.absolute(),
                     jobs_dir=(settings.compute.jobs_dir or settings.data_dir / "jobs").absolute(),
                     database_file=database if database and str(url.database) != ":memory:" else None)
