"""Slurm account names of projects and organisations: deterministic, valid for Slurm, collision-free.

A name that already is a valid lower-case account name is used as it is ("llm-lab"); any other gets a
cleaned-up form plus six hex digits of its SHA-1 ("Uni Jülich" -> "uni_j_lich_4f0c3a"), so that two
names Slurm would fold together (sacctmgr lower-cases) never share an account.
"""

from __future__ import annotations

import hashlib
import re

_INVALID = re.compile(r"[^a-z0-9_.-]+")
MAX_LEN = 40


def account_name(name: str, prefix: str = "") -> str:
    clean = _INVALID.sub("_", name.lower()).strip("_.-")
    if clean == name and len(prefix + clean) <= MAX_LEN and clean:
        return prefix + clean
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"{prefix}{clean[: MAX_LEN - len(prefix) - 7] or 'x'}_{digest}"


def project_account(project_name: str) -> str:
    return account_name(project_name)


def org_account(org_name: str, prefix: str) -> str:
    return account_name(org_name, prefix)
