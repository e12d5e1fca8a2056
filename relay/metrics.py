"""What this relay process has done, counted cheaply, and read in the Prometheus text format.

Counting happens on the frame path, so it must cost almost nothing: plain
integers on one slotted object, bumped at the cost of an attribute increment,
and a delivery-latency histogram fed by one frame in :data:`LATENCY_SAMPLE`.
Nothing is timed, logged or stored per frame, and no Prometheus object is
touched there (its counters take a lock per increment).  A scrape reads it all
at once: :func:`prometheus_text` builds the families from these counters and
from the node's live state (connections by client type, what waits for Redis)
through a collector of ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.wire import VideoFrame

LATENCY_SAMPLE: Final = 16
"""One received frame in this many is timed from its arrival to its write to each consumer."""

LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(slots=True)
class Counters:
    frames_received: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    """Dropped for a consumer that could not keep up (its bounded queue gave the oldest up)."""
    frames_rate_limited: int = 0
    alerts_stored: int = 0
    alerts_replayed: int = 0
    alerts_gap_filled: int = 0
    alerts_gap_unfilled: int = 0
    broker_publish_failures: int = 0
    broker_frames_lost: int = 0
    """Frames for other nodes lost because Redis was unreachable or behind."""
    database_unavailable: int = 0
    connections_opened: int = 0
    started: float = field(default_factory=time.monotonic)


COUNTERS = Counters()
"""This process's counters (one relay node per process)."""


class LatencyHistogram:
    """Seconds from a frame's arrival to its write to a consumer, for the sampled frames."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        out: list[tuple[str, float]] = []
        for bound, hits in zip((*LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            running += hits
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


DELIVERY_LATENCY = LatencyHistogram()


class NodeState(Protocol):
    """What a scrape reads of the node's live state."""

    def client_types(self) -> Iterable[str]:
        """The client type of each open connection ('unauthenticated' before it authenticates)."""

    def broker_backlog(self) -> int:
        """Messages waiting for the broker (Redis) to take them."""


class RelayCollector(Collector):
    def __init__(self, node: NodeState) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        c = COUNTERS
        connections = GaugeMetricFamily("relay_connections", "Open WebSocket connections", labels=["client_type"])
        for client_type, count in sorted(Counter(self._node.client_types()).items()):
            connections.add_metric([client_type], count)
        yield connections
        yield _counter("relay_connections_opened", "WebSocket connections opened", c.connections_opened)
        yield _counter("relay_frames_received", "Video frames received from producers", c.frames_received)
        yield _counter("relay_frames_delivered", "Video frames handed to consumers' queues", c.frames_delivered)
        dropped = CounterMetricFamily("relay_frames_dropped", "Video frames not delivered", labels=["reason"])
        dropped.add_metric(["slow_consumer"], c.frames_dropped)
        dropped.add_metric(["rate_limit"], c.frames_rate_limited)
        dropped.add_metric(["broker"], c.broker_frames_lost)
        yield dropped
        yield _counter(
            "relay_frame_conversions", "Frames converted between the JSON and binary forms", VideoFrame.conversions
        )
        yield _counter("relay_alerts_stored", "Alerts stored", c.alerts_stored)
        yield _counter("relay_alerts_replayed", "Stored alerts replayed to consumers (sinceAlertId)", c.alerts_replayed)
        yield _counter(
            "relay_alerts_gap_filled", "Alerts read from the database after the broker lost them", c.alerts_gap_filled
        )
        yield _counter(
            "relay_alerts_gap_unfilled", "Gaps that could not be filled (database down)", c.alerts_gap_unfilled
        )
        yield _counter("relay_broker_publish_failures", "Failed publishes to Redis", c.broker_publish_failures)
        yield GaugeMetricFamily(
            "relay_broker_backlog", "Messages waiting for Redis to take them", value=self._node.broker_backlog()
        )
        yield _counter(
            "relay_database_unavailable", "Requests and messages refused: database unreachable", c.database_unavailable
        )
        latency = HistogramMetricFamily(
            "relay_frame_delivery_seconds",
            f"Arrival to write of one frame in {LATENCY_SAMPLE}, per consumer",
        )
        latency.add_metric([], DELIVERY_LATENCY.cumulative(), DELIVERY_LATENCY.total)
        yield latency
        yield GaugeMetricFamily(
            "relay_uptime_seconds", "Seconds since this node started", value=time.monotonic() - c.started
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def prometheus_text(node: NodeState) -> bytes:
    """Everything above in the Prometheus text format, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(node))
    return generate_latest(registry)
