"""What the History page asks for, as the store's filter and as the export's URL.

The page's filters become one :class:`HistoryQuery`.  Its rows are read with
:meth:`HistoryQuery.alert_filter` through :meth:`relay.store.Alerts.page`, the
query of ``GET /api/alerts``; its export is ``GET /api/alerts/export`` with
:meth:`HistoryQuery.export_url` and its report ``GET /api/alerts/report`` with
:meth:`HistoryQuery.report_url`, whose query strings the relay turns back into
the same filter.  Building both from one object is what keeps the table and the
exported file in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlencode

from relay.clock import iso
from relay.store import AlertFilter

EXPORT_PATH = "/api/alerts/export"
REPORT_PATH = "/api/alerts/report"
REVIEW_STATES: Final[dict[str, tuple[bool | None, bool | None]]] = {
    "all": (None, None),
    "unreviewed": (False, None),
    "reviewed": (True, None),
    "false positives": (None, True),
    "confirmed": (True, False),
}
"""The History page's review filter: each choice as (``reviewed``, ``falsePositive``) of ``GET /api/alerts``."""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Alerts stored in ``[since, until)`` of these streams and severities (empty: all),
    of this object type, whose message contains ``text``, in this review state (a key of
    :data:`REVIEW_STATES`), whose confidence is in ``confidence``."""

    severities: tuple[str, ...] = ()
    stream_ids: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    object_type: str = ""
    text: str = ""
    review: str = "all"
    confidence: tuple[float, float] = (0.0, 1.0)
    """The confidence range; the whole of ``[0, 1]`` is no filter (alerts without a confidence too)."""

    def problem(self) -> str | None:
        """Why this query cannot be asked (as the REST API would answer 400), or None."""
        if self.since is not None and self.until is not None and self.since >= self.until:
            return "The start of the time range must be before its end."
        if self.confidence[0] > self.confidence[1]:
            return "The lowest confidence must not be above the highest."
        return None

    def alert_filter(self, user_id: str) -> AlertFilter:
        return AlertFilter(
            user_id=user_id,
            stream_ids=self.stream_ids,
            severities=self.severities,
            since=self.since,
            until=self.until,
            object_type=self.object_type.strip() or None,
            text=self.text.strip() or None,
            reviewed=REVIEW_STATES[self.review][0],
            false_positive=REVIEW_STATES[self.review][1],
            min_confidence=self._confidence_bounds()[0],
            max_confidence=self._confidence_bounds()[1],
        )

    def _confidence_bounds(self) -> tuple[float | None, float | None]:
        """``minConfidence`` and ``maxConfidence``; the whole of ``[0, 1]`` bounds nothing."""
        low, high = self.confidence
        if low <= 0 and high >= 1:
            return None, None
        return max(low, 0.0), min(high, 1.0)

    def export_url(self, format: str) -> str:
        """The URL of ``GET /api/alerts/export`` for these alerts as ``format`` (csv, parquet, json)."""
        return f"{EXPORT_PATH}?{urlencode([('format', format), *self._arguments()])}"

    def report_url(self) -> str:
        """The URL of ``GET /api/alerts/report`` (the HTML report) for these alerts."""
        arguments = self._arguments()
        return f"{REPORT_PATH}?{urlencode(arguments)}" if arguments else REPORT_PATH

    def _arguments(self) -> list[tuple[str, str]]:
        """The query string of the relay's alert filters, as the relay reads it back."""
        arguments = [("streamId", stream_id) for stream_id in self.stream_ids]
        if self.severities:
            arguments.append(("severity", ",".join(self.severities)))
        for name, moment in (("since", self.since), ("until", self.until)):
            text = iso(moment)
            if text is not None:
                arguments.append((name, text))
        if self.object_type.strip():
            arguments.append(("objectType", self.object_type.strip()))
        if self.text.strip():
            arguments.append(("q", self.text.strip()))
        for name, value in zip(("reviewed", "falsePositive"), REVIEW_STATES[self.review], strict=True):
            if value is not None:
                arguments.append((name, "true" if value else "false"))
        for name, bound in zip(("minConfidence", "maxConfidence"), self._confidence_bounds(), strict=True):
            if bound is not None:
                arguments.append((name, repr(bound)))
        return arguments
