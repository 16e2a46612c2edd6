"""A running batch's progress, in its work folder (FileStore.work_dir): ``started.jsonl`` (the custom_ids of
the lines sent to the gateway), ``output.jsonl`` and ``errors.jsonl`` (their results). Each is appended
and fsync'd before what it records counts: a line is marked started before it is sent, and is done once
its result is written. A server that resumes the batch reads them back: it skips the lines done, and a
line started but not done (the server died, or was stopped past ``batches.drain_s``, while it was under
way) is not sent again: it may have run and been charged, so it ends in the error file as
``interrupted``. A last line cut off by a crash mid-write is dropped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Literal

import orjson

Kind = Literal["started", "output", "errors"]


class Journal:
    def __init__(self, folder: Path) -> None:
        self.paths: dict[Kind, Path] = {kind: folder / f"{kind}.jsonl" for kind in ("started", "output", "errors")}
        self.output = self.paths["output"]
        self.errors = self.paths["errors"]
        self.done: set[str] = set()
        self.started: set[str] = set()
        self.completed = self._recover(self.output, self.done)
        self.failed = self._recover(self.errors, self.done)
        self._recover(self.paths["started"], self.started)
        self._files: dict[Kind, BinaryIO] = {}

    @property
    def interrupted(self) -> set[str]:
        """Lines sent before a restart whose result was never written."""
        return self.started - self.done

    def _recover(self, path: Path, into: set[str]) -> int:
        """Add the custom_ids in ``path`` to ``into``; a torn last line is cut off. Returns how many."""
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
            into.add(orjson.loads(raw)["custom_id"])
            count += 1
        return count

    def write(self, record: dict, *, ok: bool) -> None:
        self.write_many([(record, "output" if ok else "errors")])

    def write_many(self, entries: list[tuple[dict, Kind]]) -> None:
        """Append entries (blocking: call it off the event loop, one call at a time) and make them durable:
        one fsync per file for all of them (a group commit: entries that arrive while one is written are
        written together next, so a batch is not bounded by the disk's fsyncs per second)."""
        touched: set[Kind] = set()
        for record, kind in entries:
            f = self._files.get(kind)
            if f is None:
                f = self._files[kind] = open(self.paths[kind], "ab")  # noqa: SIM115 - kept open
            f.write(orjson.dumps(record) + b"\n")
            touched.add(kind)
        for kind in touched:
            self._files[kind].flush()
            os.fsync(self._files[kind].fileno())
        for record, kind in entries:
            if kind == "started":
                self.started.add(record["custom_id"])
                continue
            self.done.add(record["custom_id"])
            if kind == "output":
                self.completed += 1
            else:
                self.failed += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
