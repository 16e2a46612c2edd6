"""Bearer-key authentication with a short per-process cache, so the hot path skips the database.

A revoked key stops working within ``key_cache_s`` seconds (default 2); an expired key at once.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.orm import Session, sessionmaker

from jaif.access import service as access
from jaif.access.schemas import KeyPrincipal
from jaif.access.secrets import hash_api_key
from jaif.db.base import utcnow
from jaif.errors import JaifError, Unauthorized

MAX_ENTRIES = 50_000


class KeyCache:
    def __init__(self, session_factory: sessionmaker[Session], *, ttl_s: float) -> None:
        self._factory = session_factory
        self._ttl = ttl_s
        self._entries: dict[str, tuple[float, KeyPrincipal | JaifError]] = {}

    async def authenticate(self, authorization: str | None) -> KeyPrincipal:
        if not authorization:
            raise Unauthorized(
                "You didn't provide an API key. Send it as a bearer token: Authorization: Bearer YOUR_KEY.",
                code="missing_api_key",
            )
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthorized("The Authorization header must be 'Bearer YOUR_KEY'.", code="invalid_authorization")
        digest = hash_api_key(secret)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or entry[0] < now:
            outcome = await asyncio.to_thread(self._lookup, secret)
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            entry = (now + self._ttl, outcome)
            self._entries[digest] = entry
        outcome = entry[1]
        if isinstance(outcome, JaifError):
            raise outcome
        if outcome.expires_at is not None and outcome.expires_at <= utcnow():
            raise Unauthorized("This API key has expired.", code="expired_api_key")
        return outcome

    def _lookup(self, secret: str) -> KeyPrincipal | JaifError:
        with self._factory() as session:
            try:
                return access.authenticate_key(session=session, secret=secret)
            except Unauthorized as exc:
                return exc
