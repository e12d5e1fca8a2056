"""The relay's clock and how its times are written.

Two units, one source: ``timestamp`` fields on the wire are milliseconds since
the epoch (:func:`now_ms`); stored times are timezone-aware UTC datetimes
(:func:`utcnow`), written in JSON as ISO 8601 with a ``Z`` and millisecond
precision (:func:`iso`), as the contract fixes them.  A leaf module: it imports
nothing of the relay, so the wire layer may use it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of ``timestamp``."""
    return time.time_ns() // 1_000_000


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC: the unit of stored times."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """``2026-11-25T20:09:14.123Z`` for an aware datetime; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 instant; a value without an offset is taken as UTC.

    Raises ValueError for anything else, including instants that fall outside
    the years 1–9999 once moved to UTC.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None
