"""``GET /api/metrics``: what this relay node has carried since it started."""

from __future__ import annotations

import time

from relay.metrics import COUNTERS
from relay.rest.base import ApiHandler
from relay.wire import VideoFrame


class MetricsHandler(ApiHandler):
    def get(self) -> None:
        self.send_json(
            {
                "uptimeSeconds": round(time.monotonic() - COUNTERS.started, 3),
                "connections": {"open": len(self.node.connections), "opened": COUNTERS.connections_opened},
                "frames": {
                    "received": COUNTERS.frames_received,
                    "delivered": COUNTERS.frames_delivered,
                    "dropped": COUNTERS.frames_dropped,
                    "conversions": VideoFrame.conversions,
                },
                "alerts": {"stored": COUNTERS.alerts_stored},
            }
        )
