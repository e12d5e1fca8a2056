"""``GET /api/analytics/{name}`` (a named DuckDB query over the caller's alerts) and ``POST /api/analytics/refresh``.

The queries read the node's partitioned analytics copy, which the node keeps
up to date by itself every few minutes (``RELAY_ANALYTICS_REFRESH``); the
``X-Analytics-As-Of`` header says when it last did, and ``POST
/api/analytics/refresh`` brings it up to date before the next question.
"""

from __future__ import annotations

from relay.clock import iso
from relay.history.analytics import QUERIES
from relay.rest.alerts import FILTER_ARGUMENTS, AlertQueryMixin
from relay.rest.base import ApiError, ApiHandler


class AnalyticsHandler(AlertQueryMixin):
    query_arguments = FILTER_ARGUMENTS

    async def get(self, name: str) -> None:
        if name not in QUERIES:
            known = ", ".join(QUERIES)
            raise ApiError(404, f"there is no analytics query {name[:64]!r}; the queries are {known}")
        where = await self.alert_filter()
        history = self.node.history
        answer = await history.query(name, where)
        refreshed = iso(history.refreshed_at)
        if refreshed is not None:
            self.set_header("X-Analytics-As-Of", refreshed)
        self.send_json(answer.json())


class AnalyticsRefreshHandler(ApiHandler):
    async def post(self) -> None:
        done = await self.node.history.refresh()
        self.send_json(
            {
                "refreshedAt": iso(done.finished_at),
                "daysWritten": [day.isoformat() for day in done.days_written],
                "alertsWritten": done.alerts_written,
            }
        )
