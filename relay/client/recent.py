"""A bounded memory of recent keys: alert ids already delivered, refs already confirmed.

The relay sends every alert once per subscription, but a client that
reconnects, replays with ``sinceAlertId`` and fetches over REST must still never
hand the application the same alert twice.  Remembering the last ``limit`` ids
costs little and covers any overlap a reconnect can produce.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """The ``limit`` most recently added keys, each with a value; the oldest are forgotten."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: OrderedDict[str, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def add(self, key: str, value: V) -> bool:
        """Remember ``key``; False if it was already known (a duplicate)."""
        if key in self._items:
            return False
        self._items[key] = value
        if len(self._items) > self.limit:
            self._items.popitem(last=False)
        return True
