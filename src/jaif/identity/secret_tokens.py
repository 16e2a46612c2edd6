"""Secrets of identity: personal access tokens and the one-time tokens sent by e-mail.

Both are 256-bit random strings; only their SHA-256 is stored (a fast hash is safe for random secrets
of this size and keeps each API request cheap). The display prefix of a personal access token names it
in lists without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets

PAT_PREFIX = "jaifpat-"
PAT_DISPLAY_LEN = 16  # "jaifpat-" + 8 random characters


def new_personal_token() -> str:
    return PAT_PREFIX + secrets.token_urlsafe(32)


def is_personal_token(token: str) -> bool:
    return token.startswith(PAT_PREFIX)


def display_prefix(token: str) -> str:
    return token[:PAT_DISPLAY_LEN]


def new_one_time_token() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()
