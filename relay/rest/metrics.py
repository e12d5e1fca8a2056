"""``GET /api/metrics`` (JSON, for the benchmarks) and ``GET /metrics`` (Prometheus): what this node did."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST

from relay.metrics import COUNTERS, NodeState, prometheus_text
from relay.rest.base import ApiHandler, JsonHandler
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


class PrometheusHandler(JsonHandler):
    """``GET /metrics`` in the Prometheus text format, without a token: bind or proxy it privately."""

    node: NodeState

    def initialize(self, node: NodeState) -> None:
        self.node = node

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(prometheus_text(self.node))
