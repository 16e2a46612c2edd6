"""Where files' bytes live: ``<files_dir>/<project id>/<file id>``, written through a temporary file in
``<files_dir>/tmp`` and renamed into place (a file is whole or absent); a batch's results grow in
``<files_dir>/batches/<batch id>/`` until it ends."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project_id: str, file_id: str) -> Path:
        return self.root / project_id / file_id

    def temporary(self) -> Path:
        """A fresh path for an upload under way (renamed by ``keep``, or removed)."""
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}.part"

    def keep(self, source: Path, project_id: str, file_id: str) -> Path:
        """Move a written file into place (atomically: same file system); returns its path."""
        target = self.path(project_id, file_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _sync_dir(target.parent)
        return target

    def work_dir(self, batch_id: str) -> Path:
        folder = self.root / "batches" / batch_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remove(self, project_id: str, file_id: str) -> None:
        self.path(project_id, file_id).unlink(missing_ok=True)


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
