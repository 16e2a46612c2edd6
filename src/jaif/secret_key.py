"""The secret that signs portal session cookies: configured, or generated once and kept in data_dir.

``JAIF_WEB__SECRET_KEY`` wins when set (Settings refuses the placeholder, an empty or a short value in
every environment). Otherwise the first `jaif init`, `jaif serve` or create_app generates 48 random
bytes (URL-safe text) into ``data_dir/secret_key`` with mode 0600, and every later start reads that
file. The file is written to a temporary name and linked into place, so two processes starting at once
agree on one secret; a file that others may read, a symbolic link or a weak value is refused.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from jaif.config import Settings, secret_key_problem
from jaif.errors import Unavailable


def secret_key(settings: Settings) -> str:
    """The session secret: JAIF_WEB__SECRET_KEY, else the one kept in data_dir/secret_key (made when missing)."""
    if settings.web.secret_key is not None:
        return settings.web.secret_key.get_secret_value()
    return load_or_create(settings.secret_key_file)


def load_or_create(path: Path) -> str:
    """Read the secret kept at ``path``; generate and store one (mode 0600) when there is none."""
    if path.exists() or path.is_symlink():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(temporary, path)  # atomic, and fails when another process made the file first
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise Unavailable(f"The session secret {path} cannot be read ({exc.strerror}).") from exc
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unavailable(f"The session secret {path} is not a regular file.")
        if info.st_mode & 0o077:
            raise Unavailable(
                f"The session secret {path} may be read by other accounts (mode {stat.S_IMODE(info.st_mode):o}): "
                f"run chmod 600 {path}."
            )
        value = f.read().strip()
    if problem := secret_key_problem(value):
        raise Unavailable(f"The session secret in {path} {problem}: delete the file and jaif makes a new one.")
    return value
