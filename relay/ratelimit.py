"""Token buckets for the relay's rate limits (frames, alerts, REST calls, logins).

A :class:`TokenBucket` limits one thing (a stream's frames, a connection's
alerts).  :class:`KeyedBudgets` holds one bucket per key (a user, an address)
for as many keys as it is allowed, forgetting the least recently used: a flood
of new keys costs bounded memory and never resets the budget of a key in use.
A :class:`Quota` bounds how many of something are held at once, per key and in all.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class TokenBucket:
    """Allows ``rate`` events per second on average and bursts of up to ``burst``.

    A rate of 0 or less means no limit.  Cheap enough for the frame path: one
    clock read and a few float operations per event.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last = time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one; False means the event is over the limit."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def give_back(self) -> None:
        """Return the token an event took (it turned out not to count), up to the burst."""
        self._tokens = min(self._tokens + 1.0, self.burst)


class KeyedBudgets:
    """One :class:`TokenBucket` per key, the ``max_keys`` most recently used kept (an LRU).

    A forgotten key starts again with a full burst; only keys unused while
    ``max_keys`` others were used are forgotten, so a caller cannot empty the
    table of the keys that are under attack by spreading its own over many keys.
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False means over the limit."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(self.rate, burst=self.burst)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
        return bucket.allow()

    def give_back(self, key: str) -> None:
        """Return the token ``key``'s last event took (see :meth:`TokenBucket.give_back`)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back()

    def __len__(self) -> int:
        return len(self._buckets)


class Quota:
    """At most ``per_key`` things per key and ``total`` in all at once (connections waiting to authenticate)."""

    __slots__ = ("_count", "_held", "per_key", "total")

    def __init__(self, *, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self._held: dict[str, int] = {}
        self._count = 0

    def take(self, key: str) -> bool:
        """Take one for ``key``; False (and nothing taken) when either bound is reached."""
        held = self._held.get(key, 0)
        if held >= self.per_key or self._count >= self.total:
            return False
        self._held[key] = held + 1
        self._count += 1
        return True

    def give_back(self, key: str) -> None:
        held = self._held.get(key, 0)
        if not held:
            return
        self._count -= 1
        if held == 1:
            del self._held[key]
        else:
            self._held[key] = held - 1

    def __len__(self) -> int:
        return self._count
