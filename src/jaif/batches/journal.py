"""A running batch's results as they come: ``output.jsonl`` and ``errors.jsonl`` in its work folder
(FileStore.work_dir). A line's result is appended and fsync'd before the line counts as done, so the
files are the batch's progress: a server that resumes the batch reads them back and skips the
custom_ids they hold. A last line cut off by a crash mid-write is dropped (its request runs again)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import orjson


class Journal:
    def __init__(self, folder: Path) -> None:
        self.output = folder / "output.jsonl"
        self.errors = folder / "errors.jsonl"
        self.done: set[str] = set()
        self.completed = self._recover(self.output)
        self.failed = self._recover(self.errors)
        self._files: dict[bool, BinaryIO] = {}

    def _recover(self, path: Path) -> int:
        """The custom_ids already in ``path``; a torn last line is cut off."""
        if not path.exists():
            return 0
        data = path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with open(path, "r+b") as f:
                f.truncate(len(whole))
                os.fsync(f.fileno())
        count = 0
        for raw in whole.splitlines():
            self.done.add(orjson.loads(raw)["custom_id"])
            count += 1
        return count

    def write(self, record: dict, *, ok: bool) -> None:
        self.write_many([(record, ok)])

    def write_many(self, records: list[tuple[dict, bool]]) -> None:
        """Append results (``(record, ok)``; blocking: call it off the event loop, one call at a time) and make
        them durable: one fsync per file for all of them (a group commit: results that arrive while one is
        written are written together next, so a batch is not bounded by the disk's fsyncs per second)."""
        touched = set()
        for record, ok in records:
            f = self._files.get(ok)
            if f is None:
                f = self._files[ok] = open(self.output if ok else self.errors, "ab")  # noqa: SIM115 - kept open
            f.write(orjson.dumps(record) + b"\n")
            touched.add(ok)
        for ok in touched:
            self._files[ok].flush()
            os.fsync(self._files[ok].fileno())
        for record, ok in records:
            self.done.add(record["custom_id"])
            if ok:
                self.completed += 1
            else:
                self.failed += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
