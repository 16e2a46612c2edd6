"""Bearer-key authentication with a short per-process cache, so the hot path skips the database.

An expired key stops working at once. A revoked one: at once in the process that revoked it, within
milliseconds in every gateway process where Redis is configured (``revoked``, fed by
inference/revocation.py), else within ``key_cache_s`` seconds (default 2).
When an entry runs out, one lookup refreshes it: requests for the same key that arrive meanwhile
wait for that lookup instead of each asking the database (64 at once under load, every 2 s).

While the database cannot be reached (jaif/dependencies.py), a key verified before keeps working from
its entry for up to ``key_stale_s`` seconds (default 300) past the entry's end; its expiry date and
revocations announced through Redis still hold. A key with no usable entry gets 503
(DependencyUnavailable, with Retry-After). Once the outage is known, requests do not wait for the
database: they are served or refused from the cache until the runtime's check finds it back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from jaif.access import service as access
from jaif.access.schemas import KeyPrincipal
from jaif.access.secrets import hash_api_key
from jaif.db.base import utcnow
from jaif.dependencies import DATABASE, DependencyHealth, outage_of, unavailable
from jaif.errors import JaifError, Unauthorized

MAX_ENTRIES = 50_000


class KeyCache:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        ttl_s: float,
        stale_s: float = 0.0,
        health: DependencyHealth | None = None,
    ) -> None:
        self._factory = session_factory
        self._ttl = ttl_s
        self._stale = stale_s
        self._health = health or DependencyHealth([DATABASE])
        self._entries: dict[str, tuple[float, KeyPrincipal | JaifError]] = {}
        # Lookups under way, with when they started.
        self._lookups: dict[str, tuple[float, asyncio.Future[KeyPrincipal | JaifError]]] = {}
        # Bumped by forget_all: a lookup begun before it must not put what it read in the cache.
        self._generation = 0

    def revoked(self, digests: Iterable[str]) -> None:
        """These keys (by SHA-256) were revoked: refuse them from now on.

        Safe from any thread (a revoking request's commit runs in a worker thread): each is one dict
        assignment. The refusal is kept for ``key_cache_s``, which also stops a lookup that began before
        the revocation (and may have read the key as valid) from caching its answer; then the database
        says the same."""
        until = time.monotonic() + self._ttl
        refusal = Unauthorized("This API key has been revoked.", code="revoked_api_key")
        for digest in digests:
            self._entries[digest] = (until, refusal)

    def forget_all(self) -> None:
        """Drop every cached key (the revocations announced meanwhile may have been missed)."""
        self._generation += 1
        self._entries.clear()
        self._lookups.clear()

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
        outcome = entry[1] if entry is not None and entry[0] >= now else await self._renew(digest, secret, entry, now)
        if isinstance(outcome, JaifError):
            raise outcome
        if outcome.expires_at is not None and outcome.expires_at <= utcnow():
            raise Unauthorized("This API key has expired.", code="expired_api_key")
        return outcome

    async def _renew(
        self, digest: str, secret: str, entry: tuple[float, KeyPrincipal | JaifError] | None, now: float
    ) -> KeyPrincipal | JaifError:
        """A fresh answer from the database; while it is down, the entry's stale answer (for up to
        ``key_stale_s`` past its end) or DependencyUnavailable."""
        health = self._health
        if not health.is_down(DATABASE):
            try:
                return await self._refresh(digest, secret)
            except Exception as exc:
                if outage_of(exc) != DATABASE:
                    raise
                health.failed(DATABASE, exc)
        if entry is not None and entry[0] + self._stale >= now:
            health.affected(DATABASE, refused=False)
            return entry[1]
        health.affected(DATABASE, refused=True)
        raise unavailable(DATABASE)

    async def _refresh(self, digest: str, secret: str) -> KeyPrincipal | JaifError:
        now = time.monotonic()
        running = self._lookups.get(digest)
        # Join a lookup under way only if its answer may be trusted now: never longer than the docs say.
        if running is not None and running[0] + self._ttl >= now:
            lookup = running[1]
        else:
            lookup = asyncio.ensure_future(asyncio.to_thread(self._lookup, secret))
            self._lookups[digest] = (now, lookup)
            generation = self._generation

            def done(future: asyncio.Future) -> None:
                if self._lookups.get(digest, (None, None))[1] is future:
                    del self._lookups[digest]
                # A revocation since the lookup began left an entry that outlives the lookup's own.
                newer = self._entries.get(digest, (0.0, None))[0] > now + self._ttl
                stale = generation != self._generation
                if not future.cancelled() and future.exception() is None and not newer and not stale:
                    if len(self._entries) >= MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[digest] = (now + self._ttl, future.result())

            lookup.add_done_callback(done)
        # Shielded: one waiting request cancelled must not cancel the lookup the others wait for.
        return await asyncio.shield(lookup)

    def _lookup(self, secret: str) -> KeyPrincipal | JaifError:
        with self._factory() as session:
            try:
                return access.authenticate_key(session=session, secret=secret)
            except Unauthorized as exc:
                return exc
