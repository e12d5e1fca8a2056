"""Bearer token verification with a short memory, and forgetting at once.

A relay restart or a network blip makes every client reconnect at once; without
a cache each reconnect is a database round trip.  Verified tokens are
remembered for ``ttl`` seconds (keyed by their hash, never the token itself).
Unknown tokens are not remembered, so a token created a moment ago by the CLI
works at once.  Lookups of one token that overlap are one lookup: a thousand
sessions of one token arriving together would otherwise each wait for their
own turn of the database before the first answer filled the memory.

Revoking must not wait for the ``ttl``: a token revoked over REST is announced
to every node, whose verifier forgets it (:meth:`TokenVerifier.forget`); one revoked by the CLI
(which cannot reach the nodes) is found by the node's token watch, which asks
the database every second which of the tokens it trusts (:meth:`TokenVerifier.known`,
and those of its open connections) still exist.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable

from relay.identity.credentials import token_hash
from relay.store import Users


class TokenVerifier:
    def __init__(self, users: Users, *, ttl: float = 60.0, max_entries: int = 50_000) -> None:
        self._users = users
        self._ttl = ttl
        self._max_entries = max_entries
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._asking: dict[str, asyncio.Future[str | None]] = {}
        """The database lookups under way, by token hash: one per token, however many ask at once."""
        self._revocations = 0
        """How many times :meth:`forget` was called: an answer asked for before one is not remembered."""

    async def user_id(self, token: str) -> str | None:
        """The id of the token's user, or None for an unknown token."""
        key = token_hash(token)
        hit = self._known.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        asking = self._asking.get(key)
        if asking is None:  # the first to ask: the others of a reconnect storm wait for its answer
            asking = self._asking[key] = asyncio.ensure_future(self._users.user_for_token(token))
            asking.add_done_callback(lambda done: self._asked(key, done))
        revocations = self._revocations
        user_id = await asyncio.shield(asking)  # one cancelled caller does not cancel the others' answer
        if user_id is not None and self._ttl > 0 and self._revocations == revocations:
            self._known[key] = (user_id, now + self._ttl)
            self._known.move_to_end(key)
            while len(self._known) > self._max_entries:
                self._known.popitem(last=False)
        return user_id

    def _asked(self, key: str, done: asyncio.Future[str | None]) -> None:
        if self._asking.get(key) is done:  # not a lookup forgotten, and another asked since
            del self._asking[key]

    def known(self) -> list[str]:
        """The hashes of the tokens trusted from memory now (expired ones are dropped on the way)."""
        now = time.monotonic()
        for key in [key for key, (_, until) in self._known.items() if until <= now]:
            del self._known[key]
        return list(self._known)

    def forget(self, token_hashes: Iterable[str]) -> None:
        """These tokens were revoked: ask the database next time (it will say no)."""
        self._revocations += 1
        for key in token_hashes:
            self._known.pop(key, None)
            self._asking.pop(key, None)  # asked before the revocation: whoever asks now asks the database
