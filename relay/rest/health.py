"""``GET /api/health``: is this node up and can it reach its database."""

from __future__ import annotations

from relay.rest.base import ApiError, ApiHandler


class HealthHandler(ApiHandler):
    requires_auth = False

    async def get(self) -> None:
        try:
            await self.node.store.ping()
        except Exception as error:
            raise ApiError(503, f"database unreachable: {type(error).__name__}", "unavailable") from None
        self.send_json({"status": "ok"})
