"""How often a password may be tried: per address, and per user from anywhere.

A budget per address alone lets an attacker who spreads over many addresses
try one user's password as fast as they have addresses (measured before: 26
guesses a second from 16 addresses).  Only attempts that fail spend a budget: a
right password gives its token back, so an office of analysts behind one address
all log in in the morning while guesses from that address stay limited.  So every attempt also takes from the
*user's* budget, whichever address it comes from: 10 at once, then one every 6
seconds.  When a user's budget is spent, attempts for that user are refused
(``429`` with ``Retry-After``) until it refills — except from an address that
logged in as that user before (a *good* address, remembered for a day): the
rightful user at their usual desk gets in during an attack, limited by their
address's own budget only.  Unknown usernames are budgeted the same way, so the
answer never tells whether a user exists.

Each relay node keeps its own budgets (an attacker spread over several nodes
gets each node's allowance); a shared budget would need the broker.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Final

from relay.ratelimit import KeyedBudgets

PER_ADDRESS: Final = (5 / 60, 10)
"""Attempts per second and burst from one address: 5 a minute, bursts of 10."""
PER_USER: Final = (1 / 6, 10)
"""Attempts per second and burst for one username, from all addresses together."""
GOOD_ADDRESS_SECONDS: Final = 24 * 3600
MAX_REMEMBERED: Final = 100_000


class LoginGuard:
    """See the module docstring.  :meth:`admit` before checking a password, :meth:`succeeded` after."""

    def __init__(self) -> None:
        self._per_address = KeyedBudgets(*PER_ADDRESS)
        self._per_user = KeyedBudgets(*PER_USER)
        self._good: OrderedDict[tuple[str, str], float] = OrderedDict()

    def admit(self, username: str, address: str) -> float | None:
        """None if this attempt may go ahead; else how many seconds to wait before the next."""
        if not self._per_address.allow(address):
            return 1 / PER_ADDRESS[0]
        if self._per_user.allow(username) or self._is_good(username, address):
            return None
        return 1 / PER_USER[0]

    def succeeded(self, username: str, address: str) -> None:
        """The password was right: the attempt costs nothing, and this address is a good one for this user
        for a day."""
        self._per_address.give_back(address)
        self._per_user.give_back(username)
        key = (username, address)
        self._good[key] = time.monotonic() + GOOD_ADDRESS_SECONDS
        self._good.move_to_end(key)
        while len(self._good) > MAX_REMEMBERED:
            self._good.popitem(last=False)

    def _is_good(self, username: str, address: str) -> bool:
        until = self._good.get((username, address))
        return until is not None and until > time.monotonic()
