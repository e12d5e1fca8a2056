"""Retention: alerts older than ``RELAY_RETENTION_DAYS`` go, once a day, on one node at a time.

Every node with a retention set checks every :data:`CHECK_EVERY` seconds
whether the daily run is due and claims it through the database
(:meth:`relay.store.Jobs.claim`), so a cluster prunes once a day whichever
nodes are up, and a node that was down at the time catches up within the hour.
Alerts marked ``keep`` are never deleted; snapshots go with their alerts.
``relay prune --older-than DAYS`` does the same deletes at once, unguarded
(two prunes at once only find less to delete).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Final

from relay.clock import utcnow
from relay.store import Pruned, Store, is_unavailable

log = logging.getLogger("relay.retention")

JOB: Final = "retention"
EVERY: Final = timedelta(days=1)
CHECK_EVERY: Final = 3600.0
"""Seconds between a node's looks at whether the daily run is due."""


class Retention:
    """The daily prune of one node; ``deleted`` is told the days whose alerts went (for the analytics copies)."""

    def __init__(self, store: Store, days: float, deleted: Callable[[list[date]], None]) -> None:
        self._store = store
        self._days = days
        self._deleted = deleted
        self.last: Pruned | None = None
        """What this node's last run deleted (None: it has not run one)."""
        self.looked = asyncio.Event()
        """Set once :meth:`keep_running` has first looked whether a run was due (and ran it if so)."""

    async def run_if_due(self) -> Pruned | None:
        """Prune if the daily run is due and this node is the one that claimed it; what it deleted."""
        if not await self._store.jobs.claim(JOB, EVERY):
            return None
        pruned = await self._store.jobs.prune(utcnow() - timedelta(days=self._days))
        log.info("retention: %d alerts older than %g days deleted", pruned.deleted, self._days)
        self.last = pruned
        if pruned.days:
            self._deleted(pruned.days)
        return pruned

    async def keep_running(self) -> None:
        while True:
            try:
                await self.run_if_due()
            except Exception as error:  # the database gone for a while: the next look tries again
                if is_unavailable(error):
                    log.warning("retention not run (database unavailable); next look in %.0f s", CHECK_EVERY)
                else:
                    log.exception("retention failed; next look in %.0f s", CHECK_EVERY)
            self.looked.set()
            await asyncio.sleep(CHECK_EVERY)
