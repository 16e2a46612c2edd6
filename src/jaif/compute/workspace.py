"""A job's directory as its project's members see it: a folder's entries, a file opened to download, and the
project's input files copied in before the job starts.

A job's directory is written by the job (its own account, its own code): nothing in it is trusted. A path
is relative, of plain names (no ``..``, ``.``, empty part, backslash or NUL); each folder on the way is
opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before, and the file with ``O_NOFOLLOW |
O_NONBLOCK``, so a symbolic link (to the server's files, another job's) is never followed, whether it was
there when the path was checked or put there since. A folder or file is shown only when it belongs to the
job's account (``owner``): a hard link to a file of someone else's is refused too. A listing is bounded.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from jaif.errors import InvalidRequest, NotFound

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_PATH = 4096
RESERVED = frozenset({"job.sh", "stdout.log", "stderr.log"})  # what jaif itself writes in a job's directory


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "dir" | "file" | "link" (not followed) | "other" (a socket, a FIFO, a device)
    size: int
    modified: datetime
    path: str  # relative to the job's directory

    @property
    def readable(self) -> bool:
        return self.kind in ("dir", "file")


@dataclass(frozen=True)
class Listing:
    path: str  # the folder, relative to the job's directory ("" for the directory itself)
    entries: list[Entry]
    truncated: bool  # more entries than the bound: only the first ones (by name) are shown
    missing: bool = False  # the job's directory is not there (yet, or any more)


def parts_of(path: str) -> list[str]:
    """The names of a relative path; InvalidRequest for anything but plain names joined by '/'."""
    path = path.strip()
    if not path:
        return []
    if len(path) > MAX_PATH or "\x00" in path or "\\" in path or path.startswith("/"):
        raise InvalidRequest("give a path relative to the job's directory, of names joined by '/'", param="path")
    parts = path.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest("a path in the job's directory has no '..', '.' or empty parts", param="path")
    return parts


def _not_found(path: str) -> NotFound:
    return NotFound(f"no file or folder {path!r} in the job's directory (or it is not the job's own)", param="path")


def _open_dir(root: Path, parts: list[str], owner: int) -> int:
    """A descriptor of the folder ``parts`` below ``root``, every step opened without following a link."""
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError:
        raise _not_found("/".join(parts)) from None
    try:
        _check_owner(fd, owner, "/".join(parts))
        for part in parts:
            try:
                inner = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError:  # ENOENT, ENOTDIR, ELOOP (a link): none of them a folder of the job's
                raise _not_found("/".join(parts)) from None
            os.close(fd)
            fd = inner
            _check_owner(fd, owner, "/".join(parts))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_owner(fd: int, owner: int, path: str) -> os.stat_result:
    st = os.fstat(fd)
    if st.st_uid != owner:
        raise _not_found(path)
    return st


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "link" if stat.S_ISLNK(mode) else "other"


def list_dir(root: Path, path: str, *, owner: int, limit: int) -> Listing:
    """The entries of the folder ``path`` of the job's directory ``root``: folders first, then by name; at
    most ``limit`` of them (read in the folder's order, then sorted)."""
    parts = parts_of(path)
    if not parts and not os.path.lexists(root):
        return Listing(path="", entries=[], truncated=False, missing=True)
    fd = _open_dir(root, parts, owner)
    prefix = "/".join(parts)
    entries: list[Entry] = []
    truncated = False
    try:
        with os.scandir(fd) as found:
            for item in found:
                if len(entries) == limit:
                    truncated = True
                    break
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since it was listed
                entries.append(Entry(name=item.name, kind=_kind(st.st_mode), size=st.st_size,
                                     modified=datetime.fromtimestamp(st.st_mtime, UTC),
                                     path=f"{prefix}/{item.name}" if prefix else item.name))
    finally:
        os.close(fd)
    entries.sort(key=lambda e: (e.kind != "dir", e.name))
    return Listing(path=prefix, entries=entries, truncated=truncated)


def open_file(root: Path, path: str, *, owner: int) -> tuple[BinaryIO, int, str]:
    """The file ``path`` of the job's directory, opened for reading: (file, size, name). NotFound unless it is
    a regular file of the job's account, reached without a link."""
    parts = parts_of(path)
    if not parts:
        raise InvalidRequest("give the path of a file in the job's directory", param="path")
    fd = _open_dir(root, parts[:-1], owner)
    try:
        try:
            file_fd = os.open(parts[-1], FILE_FLAGS, dir_fd=fd)
        except OSError:
            raise _not_found(path) from None
    finally:
        os.close(fd)
    try:
        st = _check_owner(file_fd, owner, path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_found(path)
        os.set_blocking(file_fd, True)
    except BaseException:
        os.close(file_fd)
        raise
    return os.fdopen(file_fd, "rb"), st.st_size, parts[-1]


def input_name(filename: str, file_id: str, taken: set[str]) -> str:
    """The name a project file gets in a job's directory: its own name, made plain (no folder, no leading
    dot), else its id where that name is jaif's own or already taken."""
    name = "".join(c for c in os.path.basename(filename.replace("\\", "/")) if c.isprintable()).lstrip(".")
    name = name.strip()[:200]
    if not name or name in RESERVED or name in taken:
        name = file_id if not name or name in RESERVED else f"{file_id}-{name}"
    return name


def copy_input(source: Path, target: Path, *, uid: int | None, gid: int | None) -> None:
    """Copy a stored file to ``target`` (a new name in a job's directory not yet started), mode 0600 and, when
    jaif runs as root, owned by the job's account."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        if uid is not None and gid is not None:
            os.fchown(out.fileno(), uid, gid)
