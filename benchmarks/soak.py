"""``python -m benchmarks.soak``: nodes, clients and faults for minutes, then an exact account of every alert.

Issue 9 promises that nothing confirmed is lost across node and Redis kills.
This holds the promise to account: two or three ``relay serve`` nodes on one
PostgreSQL schema of its own and a ``redis-server`` of its own (never the shared
one), and over them, through the project's own client library
(:class:`relay.client.RelayClient`, which resends unconfirmed alerts and resumes
with ``sinceAlertId``, as real clients do):

* phones: register their stream, send frames, consume the stream's alerts;
* ML services: consume the frames, send alerts with refs (naming the frame);
* dashboards: consume alerts and status; some are slow consumers of the frames
  too, whose network stalls for seconds at a time;

spread over the nodes.  Every client talks to its node through a TCP link of
its own (:class:`Link`) that the soak unplugs at random (an abrupt cut, no close
frame, as a phone losing its network) and plugs back.  Meanwhile one node is
killed with SIGKILL and restarted on its port, and Redis is killed and restarted
(empty, as after a crash).

Then the account (:func:`account`): every alert confirmed by ``alert-stored`` is
in the database exactly once by its ref, under the id it was confirmed with;
every consumer, all subscribed before the first alert, got every alert of its
stream (live, replayed after a reconnect, or filled in after the Redis outage),
counted on the wire before the library's own deduplication so that a relay
sending one twice is seen; each stream's sequence has no gap; every node's
connection gauge (``GET /metrics``) goes to 0 once the clients are gone; and each
node's RSS is back near what it was before the clients came.  It prints the
account as tables and exits 1 if any check fails.  ``--short`` is the CI size
(under a minute, still with the node kill and the Redis restart;
``tests/examples/test_soak_short.py``); ``--seed`` fixes every random choice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import redis.asyncio as redis_client
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from benchmarks import api
from benchmarks.history_rest import database
from benchmarks.procstat import memory
from benchmarks.relays import free_port
from relay.broker.redis import CHANNEL_PREFIX
from relay.client import Alert, Backoff, Frame, Message, RelayClient
from relay.store import Store
from relay.store.models import Alert as AlertRow

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 90.0
"""Seconds a node may take to answer ``/api/health`` (a loaded CI machine migrating a schema)."""
SETTLE_TIMEOUT = 90.0
"""Seconds the end of a run waits for alerts to be confirmed, delivered, and connections to go."""
AFTER_FAULTS = 0.2
"""Share of the traffic's time that runs on after the last fault (the Redis restart) however late it came."""
RSS_SLACK_MB = 40.0
RSS_SLACK_SHARE = 0.5
"""A node's RSS is back near its baseline within the larger of these (MB, share of the baseline):
a Python process keeps some of the memory it once used (the allocator's arenas)."""

T = TypeVar("T")
ClientKind = Literal["phone", "ml-service", "dashboard", "slow-dashboard"]


@dataclass(frozen=True, slots=True)
class Plan:
    """How big a run is and what happens in it."""

    nodes: int
    streams: int
    dashboards_per_stream: int
    slow_every: int
    """One stream in this many has one of its dashboards slow (it consumes frames over a stalling link)."""
    seconds: float
    fps: float
    frame_bytes: int
    alerts_per_second: float
    """Per ML service (one per stream)."""
    cut_every: float
    """Mean seconds between two random disconnects (of any client)."""
    node_outage: float
    redis_outage: float
    seed: int

    @classmethod
    def full(cls, seconds: float, seed: int) -> Plan:
        return cls(3, 12, 2, 3, seconds, 4.0, 24_000, 1.0, 1.5, 3.0, 3.0, seed)

    @classmethod
    def short(cls, seconds: float, seed: int) -> Plan:
        return cls(2, 4, 1, 4, seconds, 4.0, 24_000, 2.0, 1.5, 2.0, 2.0, seed)


# ---------------------------------------------------------------------------------------------- services


class PrivateRedis:
    """A ``redis-server`` of the soak's own on a free port, without persistence: killed and started again
    as a crash would leave it (empty), never the shared one."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis_client.from_url(self.url)
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                while True:
                    with contextlib.suppress(redis_client.ConnectionError):
                        await client.ping()
                        return
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class Node:
    """One ``relay serve`` process on a port of its own, which a restart keeps (clients come back to it)."""

    def __init__(
        self, index: int, database_url: str, broker_url: str, folder: Path, options: tuple[str, ...] = ()
    ) -> None:
        self.index = index
        self.options = options
        """More ``relay serve`` flags (``benchmarks.nodes`` lifts the frame and alert rate limits)."""
        self.port = free_port()
        self.database_url = database_url
        self.broker_url = broker_url
        self.log = folder / f"node{index}.log"
        self.analytics = folder / f"analytics{index}"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.baseline_rss_mb = 0.0
        """RSS of the current process once it answered, before any client came (or came back)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it and wait until it answers ``/api/health``; its RSS then is its baseline."""
        command = [
            sys.executable,
            *("-m", "relay", "serve", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--database-url", self.database_url, "--broker-url", self.broker_url, "--log-level", "WARNING"),
            *self.options,
        ]
        environment = {**os.environ, "RELAY_ANALYTICS_DIR": str(self.analytics), "RELAY_ANALYTICS_REFRESH": "0"}
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        self.starts += 1
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not await api.healthy(self.url):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {self.index} did not start: {self.log_tail()}")
            await asyncio.sleep(0.1)
        self.baseline_rss_mb = self.rss_mb()

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def rss_mb(self) -> float:
        assert self.process is not None
        return memory(self.process.pid).rss_mb

    async def scrape(self) -> defaultdict[str, float]:
        """``GET /metrics``: each sample by name (``_total`` dropped) and label values, summed over the rest."""
        text = await asyncio.to_thread(_get_text, f"{self.url}/metrics")
        samples: defaultdict[str, float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name.removesuffix("_total")
                samples[name] += sample.value
                for value in sample.labels.values():
                    samples[f"{name}:{value}"] += sample.value
        return samples

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


# ---------------------------------------------------------------------------------------------- the network


class Link:
    """The network between one client and its node: a TCP proxy the soak can cut, and stall.

    :meth:`cut` aborts its connections (RST both ways: no close frame, as a
    phone losing its network) and refuses new ones until :meth:`restore`.
    :meth:`stall` stops the bytes from the relay to the client (a consumer that
    cannot keep up); its socket to the relay then has a small receive buffer, so
    the relay's own queue, not this proxy, is what fills.
    """

    SLOW_RECEIVE_BUFFER = 32 * 1024

    def __init__(self, target_port: int, *, slow: bool = False) -> None:
        self.target_port = target_port
        self.slow = slow
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._cut = True
        self.cuts += 1
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self._cut = False

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self._cut = True
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            return
        try:
            relay_reader, relay_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:  # the node is down: the client sees its connection refused, and retries
            client_writer.transport.abort()
            return
        if self.slow:
            sock = relay_writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.SLOW_RECEIVE_BUFFER)
        writers = (client_writer, relay_writer)
        self._writers.update(writers)
        pipes = [
            asyncio.ensure_future(self._pipe(client_reader, relay_writer, None)),
            asyncio.ensure_future(self._pipe(relay_reader, client_writer, self._flowing)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for writer in writers:
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                if flowing is not None:
                    await flowing.wait()
                data = await reader.read(16_384 if self.slow else 65_536)
                if not data:
                    return
                writer.write(data)
                await writer.drain()


# ---------------------------------------------------------------------------------------------- the clients


class TappedClient(RelayClient):
    """A :class:`RelayClient` that also shows the soak every text message as it arrives, before the library acts.

    The library never hands its application the same alert twice (it remembers
    the ids it delivered): right for an application, and exactly what would hide
    a relay that sends one twice, which the contract forbids ("no gap, no
    duplicate").  So the soak counts alerts and confirmations on the wire, by
    wrapping the receive of the client's sans-I/O state.
    """

    def __init__(self, url: str, token: str, *, on_wire: Callable[[dict[str, Any]], None], **options: Any) -> None:
        super().__init__(url, token, **options)
        receive = self._state.receive

        def tapped(raw: str | bytes) -> Any:
            if isinstance(raw, str):
                on_wire(orjson.loads(raw))
            return receive(raw)

        self._state.receive = tapped  # type: ignore[method-assign]


@dataclass(eq=False)
class SoakClient:
    """One client of the soak, whatever its role; what it saw is counted here across its reconnects."""

    name: str
    kind: ClientKind
    stream_id: str
    node: int
    link: Link
    client: TappedClient | None = None
    wire_alerts: list[tuple[int, str, float]] = field(default_factory=list)
    """Every alert that came on the wire (replays and fills included): (connection number, alert id, when:
    ``time.monotonic()``)."""
    delivered: set[str] = field(default_factory=set)
    """Alert ids the library handed the application."""
    frames: int = 0
    last_frame: int | None = None
    refs: list[str] = field(default_factory=list)
    """ML services: the refs of the alerts sent."""
    confirmations: dict[str, set[str]] = field(default_factory=dict)
    """ML services: ref → the ids ``alert-stored`` named for it (more than one: a double)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def consumes_alerts(self) -> bool:
        return self.kind != "ml-service"

    @property
    def connection_number(self) -> int:
        """Which of its connections this is (1, 2, …): one is counted once its handshake (when replayed alerts
        come) is over."""
        assert self.client is not None
        stats = self.client.stats
        return stats.connections + (0 if stats.connected else 1)

    @property
    def reconnects(self) -> int:
        """Connections made after the first (attempts that failed, while its node or link was down, are not counted)."""
        return max(0, self.client.stats.connections - 1) if self.client is not None else 0

    @property
    def frames_sent(self) -> int:
        return self.client.stats.frames_sent if self.client is not None else 0

    def on_wire(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "alert":
            self.wire_alerts.append((self.connection_number, str(message.get("id")), time.monotonic()))
        elif kind == "alert-stored":
            self.confirmations.setdefault(str(message.get("ref")), set()).add(str(message.get("id")))
            self.changed.set()

    def on_message(self, message: Message) -> None:
        if isinstance(message, Alert):
            self.delivered.add(message.id)
            self.changed.set()
        elif isinstance(message, Frame):
            self.frames += 1
            self.last_frame = message.timestamp

    async def connect(self, token: str) -> None:
        """Connect and attach its stream as its role does; returns once the relay confirmed."""
        client = TappedClient(
            self.link.url,
            token,
            on_wire=self.on_wire,
            on_message=self.on_message,
            backoff=Backoff(base=0.2, cap=2.0),
            alert_resend_interval=3.0,
            connect_timeout=20.0,
            http_timeout=20.0,
        )
        self.client = client
        if self.kind == "phone":
            await client.register(self.stream_id, consumes=("alert",))
        elif self.kind == "ml-service":
            await client.subscribe(
                self.stream_id, consumes=("video-frame",), produces=("alert",), client_type="ml-service"
            )
        elif self.kind == "dashboard":
            await client.subscribe(self.stream_id, consumes=("alert", "stream-status"))
        else:
            await client.subscribe(self.stream_id, consumes=("alert", "stream-status", "video-frame"))


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Faults:
    """What the soak did to the system, with when (seconds into the traffic)."""

    disconnects: int = 0
    stalls: int = 0
    node_killed: int | None = None
    node_killed_at: float | None = None
    node_back_after: float | None = None
    redis_killed_at: float | None = None
    redis_back_after: float | None = None


class Soak:
    """One run: services, nodes and clients up, traffic and faults for ``plan.seconds``, then the account."""

    def __init__(self, plan: Plan, database_url: str, redis: PrivateRedis, folder: Path) -> None:
        self.plan = plan
        self.database_url = database_url
        self.redis = redis
        self.rng = random.Random(plan.seed)
        self.nodes = [Node(index, database_url, redis.url, folder) for index in range(plan.nodes)]
        self.clients: list[SoakClient] = []
        self.faults = Faults()
        self.stream_ids: list[str] = []
        self.token = ""
        self._traffic_started = 0.0
        self._stopping = asyncio.Event()

    async def run(self) -> dict[str, Any]:
        store = await Store.open(self.database_url)  # migrates the schema once, before any node opens it
        try:
            issued = await store.users.add_or_issue_token("soak")
            self.token = issued.token
            for index in range(self.plan.streams):
                stream = await store.streams.register(issued.user_id, f"soak phone {index}", "mobile", {})
                self.stream_ids.append(stream.id)
            await asyncio.gather(*(node.start() for node in self.nodes))
            started = time.monotonic()
            try:
                await self._connect_clients()
                connected = time.monotonic() - started
                await self._traffic()
                settle = await self._settle()
                rows = await self._stored_alerts(store)
                ending = await self._clients_gone()
            finally:
                for client in self.clients:
                    if client.client is not None:
                        await client.client.close()
                    await client.link.close()
                await asyncio.gather(*(node.stop() for node in self.nodes))
        finally:
            await store.close()
        report = account(self.clients, rows, ending, self.plan, self._traffic_started)
        report["faults"] = asdict(self.faults)
        report["timing"] = {"connect_seconds": round(connected, 2), **settle}
        report["logs"] = {node.index: node.log_tail(60) for node in self.nodes} if report["failures"] else {}
        return report

    def _place(self) -> list[tuple[str, ClientKind, int, int]]:
        """Who is where: (name, kind, stream index, node), spread so that each stream's clients meet on
        several nodes (its phone, its ML service and its dashboards each on another where possible)."""
        plan, placed = self.plan, list[tuple[str, ClientKind, int, int]]()
        for s in range(plan.streams):
            placed.append((f"phone{s}", "phone", s, s % plan.nodes))
            placed.append((f"ml{s}", "ml-service", s, (s + 1) % plan.nodes))
            for d in range(plan.dashboards_per_stream):
                slow = d == 0 and s % plan.slow_every == 0
                kind: ClientKind = "slow-dashboard" if slow else "dashboard"
                placed.append((f"dash{s}.{d}", kind, s, (s + d + 2) % plan.nodes))
        return placed

    async def _connect_clients(self) -> None:
        """Every client connected and attached before the first frame or alert, so every consumer of a
        stream is owed every alert it will ever get."""
        for name, kind, stream, node in self._place():
            link = Link(self.nodes[node].port, slow=kind == "slow-dashboard")
            await link.start()
            self.clients.append(SoakClient(name, kind, self.stream_ids[stream], node, link))
        async with asyncio.timeout(STARTUP_TIMEOUT):
            await asyncio.gather(*(client.connect(self.token) for client in self.clients))

    async def _traffic(self) -> None:
        """Frames, alerts, cuts and stalls for ``plan.seconds``: the node kill at 20 % of it, the Redis restart
        at 60 % (or once the node serves again), and at least ``AFTER_FAULTS`` of it after Redis is back, so that
        what the faults broke has to heal under traffic."""
        self._traffic_started = time.monotonic()
        tasks = [asyncio.create_task(self._phone(c)) for c in self.clients if c.kind == "phone"]
        tasks += [
            asyncio.create_task(self._ml(c, random.Random(self.rng.random())))
            for c in self.clients
            if c.kind == "ml-service"
        ]
        tasks += [asyncio.create_task(self._stalls(c)) for c in self.clients if c.kind == "slow-dashboard"]
        tasks.append(asyncio.create_task(self._disconnects()))
        try:
            await self._at(0.2)
            await self._kill_a_node()
            await self._at(0.6)
            await self._restart_redis()
            await self._at(1.0, after=AFTER_FAULTS * self.plan.seconds)
        finally:
            self._stopping.set()
            await asyncio.gather(*tasks)
        for client in self.clients:
            client.link.restore()
            client.link.flow()

    def _elapsed(self) -> float:
        return time.monotonic() - self._traffic_started

    async def _at(self, share: float, *, after: float = 0.0) -> None:
        """Wait until ``share`` of the traffic's time has passed, and at least ``after`` seconds from now."""
        delay = max(self.plan.seconds * share - self._elapsed(), after)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the traffic ends first; True if it did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _phone(self, phone: SoakClient) -> None:
        assert phone.client is not None
        image = b"\xff\xd8\xff\xe0" + os.urandom(self.plan.frame_bytes - 4)
        while not await self._pause(1 / self.plan.fps):
            await phone.client.send_frame(image)

    async def _ml(self, ml: SoakClient, rng: random.Random) -> None:
        """Alerts at about ``alerts_per_second``, each naming the newest frame this service got."""
        assert ml.client is not None
        objects = ("person", "car", "bicycle", "dog", "package")
        while not await self._pause(rng.expovariate(self.plan.alerts_per_second)):
            ref = f"{ml.name}-{len(ml.refs)}"
            ml.refs.append(ref)
            await ml.client.send_alert(
                rng.choice(("low", "medium", "high", "critical")),
                f"{rng.choice(objects)} seen ({ref})",
                metadata={"confidence": round(rng.random(), 3), "objectType": rng.choice(objects)},
                ref=ref,
                frame_timestamp=ml.last_frame,
            )

    async def _disconnects(self) -> None:
        """Every so often a random client's network goes for a while (its library reconnects by itself)."""
        while not await self._pause(self.rng.expovariate(1 / self.plan.cut_every)):
            victim = self.rng.choice(self.clients)
            outage = self.rng.uniform(0.2, 2.0)
            victim.link.cut()
            self.faults.disconnects += 1
            asyncio.get_running_loop().call_later(outage, victim.link.restore)

    async def _stalls(self, slow: SoakClient) -> None:
        """A slow consumer: its network stops carrying the relay's bytes for seconds at a time, long enough for
        its stream's frames to fill the buffers on the way (the relay's 512 KB socket send buffer, this link's
        receive buffers: about 7 s of 4 fps of 24 KB) and the relay's frame queue to drop, but short of the
        relay's ping timeout (30 s) and of the client library's (20 s)."""
        while not await self._pause(self.rng.uniform(1.0, 3.0)):
            slow.link.stall()
            self.faults.stalls += 1
            await self._pause(self.rng.uniform(6.0, 12.0))
            slow.link.flow()

    async def _kill_a_node(self) -> None:
        node = self.nodes[self.rng.randrange(len(self.nodes))]
        self.faults.node_killed, self.faults.node_killed_at = node.index, round(self._elapsed(), 2)
        node.kill()
        assert node.process is not None
        await node.process.wait()
        await asyncio.sleep(self.plan.node_outage)
        await node.start()
        self.faults.node_back_after = round(self._elapsed() - self.faults.node_killed_at, 2)

    async def _restart_redis(self) -> None:
        self.faults.redis_killed_at = round(self._elapsed(), 2)
        await self.redis.kill()
        await asyncio.sleep(self.plan.redis_outage)
        await self.redis.start()
        self.faults.redis_back_after = round(self._elapsed() - self.faults.redis_killed_at, 2)

    async def _settle(self) -> dict[str, float]:
        """Wait (for events, under a guard) until every alert sent is confirmed and every consumer has
        every alert stored for its stream; what is still missing then is what the account reports."""
        began = time.monotonic()
        mls = [c for c in self.clients if c.kind == "ml-service"]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await asyncio.gather(*(c.client.flush_alerts() for c in mls if c.client is not None))
        confirmed = time.monotonic() - began
        owed: dict[str, set[str]] = {}
        for ml in mls:
            owed.setdefault(ml.stream_id, set()).update(i for ids in ml.confirmations.values() for i in ids)
        consumers = [c for c in self.clients if c.consumes_alerts]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(5.0, SETTLE_TIMEOUT - confirmed)):
                for consumer in consumers:
                    while not owed.get(consumer.stream_id, set()) <= consumer.delivered:
                        consumer.changed.clear()
                        await consumer.changed.wait()
        return {"confirm_seconds": round(confirmed, 2), "deliver_seconds": round(time.monotonic() - began, 2)}

    async def _stored_alerts(self, store: Store) -> list[dict[str, Any]]:
        query = select(AlertRow.id, AlertRow.stream_id, AlertRow.ref, AlertRow.stream_seq).where(
            AlertRow.stream_id.in_(self.stream_ids)
        )
        async with store.engine.connect() as connection:
            result = await connection.execute(query)
            return [
                {"id": alert_id, "stream_id": stream_id, "ref": ref, "stream_seq": stream_seq}
                for alert_id, stream_id, ref, stream_seq in result
            ]

    async def _clients_gone(self) -> dict[str, Any]:
        """Close every client, then wait (under a guard) until each node's connection gauge reads 0 and no node
        listens to a soak stream's Redis channel any more: a connection the hub kept would keep its stream's
        channel subscribed (a node listens to a stream while it has a consumer of it)."""
        for client in self.clients:
            if client.client is not None:
                await client.client.close()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        ending = []
        for node in self.nodes:
            metrics = await until_zero(node.scrape, "relay_connections", deadline)
            rss = node.rss_mb()
            assert node.process is not None
            ending.append(
                {
                    "node": node.index,
                    "starts": node.starts,
                    "connections_at_end": int(metrics["relay_connections"]),
                    "alerts_stored": int(metrics["relay_alerts_stored"]),
                    "alerts_replayed": int(metrics["relay_alerts_replayed"]),
                    "alerts_gap_filled": int(metrics["relay_alerts_gap_filled"]),
                    "gaps_unfilled": int(metrics["relay_alerts_gap_unfilled"]),
                    "frames_dropped_slow_consumer": int(metrics["relay_frames_dropped:slow_consumer"]),
                    "broker_publish_failures": int(metrics["relay_broker_publish_failures"]),
                    "baseline_rss_mb": round(node.baseline_rss_mb, 1),
                    "peak_rss_mb": round(memory(node.process.pid).peak_rss_mb, 1),
                    "end_rss_mb": round(rss, 1),
                    "rss_bound_mb": round(node.baseline_rss_mb + rss_slack(node.baseline_rss_mb), 1),
                }
            )
        listeners = await until_zero(self._channel_listeners, None, deadline)
        return {"nodes": ending, "stream_channel_listeners": listeners}

    async def _channel_listeners(self) -> int:
        """Subscriptions to the soak streams' channels in Redis (sharded on Redis 7, plain on 6)."""
        channels = [CHANNEL_PREFIX + stream_id for stream_id in self.stream_ids]
        client = redis_client.from_url(self.redis.url)
        try:
            total = 0
            for command in ("PUBSUB SHARDNUMSUB", "PUBSUB NUMSUB"):
                with contextlib.suppress(redis_client.ResponseError):
                    answer = await client.execute_command(*command.split(), *channels)  # type: ignore[no-untyped-call]
                    total += sum(int(count) for count in answer[1::2])
            return total
        finally:
            await client.aclose()


async def until_zero(read: Callable[[], Awaitable[T]], key: str | None, deadline: float) -> T:
    """``read()`` again until it (its ``key``) is 0 or ``deadline`` passes; the last reading.

    A poll, not an event: how many connections a node holds, or Redis
    subscriptions, is only known by asking.
    """
    while True:
        value = await read()
        figure = value[key] if key is not None else value  # type: ignore[index]
        if not figure or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


def rss_slack(baseline_mb: float) -> float:
    return max(RSS_SLACK_MB, RSS_SLACK_SHARE * baseline_mb)


# ---------------------------------------------------------------------------------------------- the account


def account(
    clients: list[SoakClient], rows: list[dict[str, Any]], ending: dict[str, Any], plan: Plan, traffic_started: float
) -> dict[str, Any]:
    """Every figure and check of a run, from what the clients saw, what the database holds and how the nodes
    ended."""
    nodes = ending["nodes"]
    by_ref: dict[tuple[str, str | None], list[str]] = {}
    by_stream: dict[str, set[str]] = {}
    seqs: dict[str, list[int]] = {}
    seq_of = {row["id"]: row["stream_seq"] for row in rows}
    for row in rows:
        by_ref.setdefault((row["stream_id"], row["ref"]), []).append(row["id"])
        by_stream.setdefault(row["stream_id"], set()).add(row["id"])
        seqs.setdefault(row["stream_id"], []).append(row["stream_seq"])
    mls = [c for c in clients if c.kind == "ml-service"]
    sent = sum(len(ml.refs) for ml in mls)
    confirmed = lost = doubled_in_db = confirmed_twice = id_mismatch = 0
    lost_refs: list[str] = []
    for ml in mls:
        for ref, ids in ml.confirmations.items():
            confirmed += 1
            stored = by_ref.get((ml.stream_id, ref), [])
            if not stored:
                lost += 1
                lost_refs.append(ref)
            doubled_in_db += len(stored) > 1
            confirmed_twice += len(ids) > 1
            id_mismatch += bool(stored) and set(stored) != ids
    sent_refs = {(ml.stream_id, ref) for ml in mls for ref in ml.refs}
    unknown_in_db = sum(1 for key in by_ref if key not in sent_refs)
    unconfirmed = sent - sum(1 for ml in mls for ref in ml.refs if ref in ml.confirmations)
    sequence_gaps = sum(
        len(set(range(1, max(numbers) + 1)) - set(numbers)) + (len(numbers) - len(set(numbers)))
        for numbers in seqs.values()
    )

    groups: dict[str, dict[str, int]] = {}
    missing_examples: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    for client in clients:
        if not client.consumes_alerts:
            continue
        owed = by_stream.get(client.stream_id, set())
        seen = client.delivered
        wire = Counter(alert_id for _, alert_id, _ in client.wire_alerts)
        on_one_connection = Counter((number, alert_id) for number, alert_id, _ in client.wire_alerts)
        order_breaks = 0
        on_connection: dict[int, list[int]] = {}
        for number, alert_id, when in client.wire_alerts:
            seq = seq_of.get(alert_id, 0)
            before = on_connection.setdefault(number, [])
            if before and seq <= before[-1] and seq not in before:
                order_breaks += 1
            if before and seq <= before[-1]:
                anomalies.append(
                    {
                        "consumer": client.name,
                        "node": client.node,
                        "connection": number,
                        "what": "double" if seq in before else "out of order",
                        "seq": seq,
                        "after_seqs": before[-6:],
                        "at_second": round(when - traffic_started, 2),
                    }
                )
            before.append(seq)
        missing = owed - seen
        group = groups.setdefault(
            client.kind,
            {
                "consumers": 0,
                "owed": 0,
                "received": 0,
                "by_rest": 0,
                "missing": 0,
                "doubles": 0,
                "again_after_reconnect": 0,
                "out_of_order": 0,
                "reconnects": 0,
                "frames": 0,
            },
        )
        group["consumers"] += 1
        group["owed"] += len(owed)
        group["received"] += len(owed & seen)
        group["missing"] += len(missing)
        group["doubles"] += sum(count - 1 for count in on_one_connection.values())
        group["again_after_reconnect"] += sum(count - 1 for count in wire.values()) - sum(
            count - 1 for count in on_one_connection.values()
        )
        group["out_of_order"] += order_breaks
        group["by_rest"] += len(seen - set(wire))
        group["reconnects"] += client.reconnects
        group["frames"] += client.frames_sent if client.kind == "phone" else client.frames
        if missing:
            missing_examples.append(
                {
                    "consumer": client.name,
                    "node": client.node,
                    "owed": len(owed),
                    "missing_seqs": sorted(seq_of[alert_id] for alert_id in missing)[:30],
                    "highest_seq_received": max((seq_of.get(i, 0) for i in seen), default=0),
                    "reconnects": client.reconnects,
                    "link_cuts": client.link.cuts,
                }
            )

    checks = {
        "lost": lost,
        "doubled": doubled_in_db
        + confirmed_twice
        + sum(g["doubles"] + g["again_after_reconnect"] for g in groups.values()),
        "out_of_order": sum(g["out_of_order"] for g in groups.values()),
        "id_mismatch": id_mismatch,
        "unconfirmed": unconfirmed,
        "not_delivered": sum(g["missing"] for g in groups.values()),
        "sequence_gaps": sequence_gaps,
        "unknown_in_db": unknown_in_db,
        "dead_connections": sum(node["connections_at_end"] for node in nodes),
        "stream_channels_still_listened": ending["stream_channel_listeners"],
        "rss_not_back": sum(node["end_rss_mb"] > node["rss_bound_mb"] for node in nodes),
    }
    return {
        "plan": asdict(plan),
        "alerts": {
            "sent": sent,
            "confirmed": confirmed,
            "unconfirmed": unconfirmed,
            "in_database": len(rows),
            "stored_once": sum(1 for ids in by_ref.values() if len(ids) == 1),
            "lost": lost,
            "doubled_in_database": doubled_in_db,
            "confirmed_with_two_ids": confirmed_twice,
            "id_mismatch": id_mismatch,
            "unknown_in_database": unknown_in_db,
            "sequence_gaps": sequence_gaps,
            "lost_refs": lost_refs[:20],
        },
        "ml_services": {
            "clients": len(mls),
            "reconnects": sum(ml.reconnects for ml in mls),
            "frames": sum(ml.frames for ml in mls),
        },
        "consumers": groups,
        "missing_examples": missing_examples[:20],
        "order_anomalies": anomalies[:40],
        "nodes": nodes,
        "checks": checks,
        "failures": [name for name, value in checks.items() if value],
    }


CONSUMER_COLUMNS = (
    "consumers",
    "owed",
    "received",
    "by_rest",
    "missing",
    "doubles",
    "again_after_reconnect",
    "out_of_order",
    "reconnects",
    "frames",
)


def render(report: dict[str, Any]) -> str:
    """The account as plain-text tables."""
    plan, faults, alerts = report["plan"], report["faults"], report["alerts"]
    clients = sum(g["consumers"] for g in report["consumers"].values()) + report["ml_services"]["clients"]
    lines = [
        f"Soak: {plan['nodes']} nodes, {plan['streams']} streams, {clients} clients, "
        f"{plan['seconds']:g} s of traffic, seed {plan['seed']}",
        f"faults: {faults['disconnects']} random disconnects, {faults['stalls']} stalls of slow consumers, "
        f"node {faults['node_killed']} kill -9 at {faults['node_killed_at']} s (serving again "
        f"{faults['node_back_after']} s later), Redis killed at {faults['redis_killed_at']} s (back "
        f"{faults['redis_back_after']} s later)",
        f"settling: every alert confirmed {report['timing']['confirm_seconds']} s and delivered "
        f"{report['timing']['deliver_seconds']} s after the traffic stopped",
        "",
        _table(
            ["alerts", "count"],
            [
                ["sent (refs)", alerts["sent"]],
                ["confirmed (alert-stored)", alerts["confirmed"]],
                ["not confirmed at the end", alerts["unconfirmed"]],
                ["in the database", alerts["in_database"]],
                ["  of them stored once by ref", alerts["stored_once"]],
                ["confirmed, not in the database (lost)", alerts["lost"]],
                ["confirmed, in the database twice", alerts["doubled_in_database"]],
                ["confirmed under two ids", alerts["confirmed_with_two_ids"]],
                ["confirmed id is not the stored id", alerts["id_mismatch"]],
                ["in the database, never sent", alerts["unknown_in_database"]],
                ["gaps in the per-stream sequence", alerts["sequence_gaps"]],
            ],
        ),
        "",
        _table(
            [
                "consumers",
                "n",
                "alerts owed",
                "received",
                "of them by REST",
                "missing",
                "doubles",
                "again after reconnect",
                "out of order",
                "reconnects",
                "frames out/in",
            ],
            [[kind, *(g[key] for key in CONSUMER_COLUMNS)] for kind, g in sorted(report["consumers"].items())]
            + [
                [
                    "ml-service (senders)",
                    report["ml_services"]["clients"],
                    *[""] * (len(CONSUMER_COLUMNS) - 3),
                    report["ml_services"]["reconnects"],
                    report["ml_services"]["frames"],
                ]
            ],
        ),
        "(received: what the client library handed its application, live, replayed, or fetched over REST on a "
        "reconnect before any alert had come; doubles: the same alert twice on one connection; again after "
        "reconnect: an alert the relay sent on an earlier connection replayed on a later one)",
        "",
        _table(
            [
                "node",
                "starts",
                "stored",
                "replayed",
                "gap-filled",
                "frames dropped (slow)",
                "connections at end",
                "RSS baseline MB",
                "peak MB",
                "end MB",
                "bound MB",
            ],
            [
                [
                    n["node"],
                    n["starts"],
                    n["alerts_stored"],
                    n["alerts_replayed"],
                    n["alerts_gap_filled"],
                    n["frames_dropped_slow_consumer"],
                    n["connections_at_end"],
                    n["baseline_rss_mb"],
                    n["peak_rss_mb"],
                    n["end_rss_mb"],
                    n["rss_bound_mb"],
                ]
                for n in report["nodes"]
            ],
        ),
        "(a node's counters are those of its current process: since its restart for the killed one)",
        "",
        "checks: " + ", ".join(f"{name} {value}" for name, value in report["checks"].items()),
        "result: " + ("FAILED (" + ", ".join(report["failures"]) + ")" if report["failures"] else "ok"),
    ]
    if report["missing_examples"]:
        lines += [
            "missing, by consumer:",
            *(f"  {orjson.dumps(example).decode()}" for example in report["missing_examples"]),
        ]
    if report["order_anomalies"]:
        lines += [
            "doubles and alerts out of order on one connection (seconds into the traffic):",
            *(f"  {orjson.dumps(anomaly).decode()}" for anomaly in report["order_anomalies"]),
        ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = []
    for index, row in enumerate(cells):
        out.append(
            "  ".join(
                value.ljust(width) if i == 0 else value.rjust(width)
                for i, (value, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- command line


@contextlib.asynccontextmanager
async def private_redis(why: str = "the soak restarts a Redis of its own") -> AsyncIterator[PrivateRedis]:
    """A redis-server of this run's own, killed at the end; ``why`` says what it is for, if it is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(f"redis-server is not installed: {why}")
    server = PrivateRedis(executable)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def soak(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        async with database("postgresql") as database_url, private_redis() as redis:
            report = await Soak(plan, database_url, redis, Path(folder)).run()
    report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()}
    report["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="seconds of traffic (default 180; --short: 25)")
    parser.add_argument("--short", action="store_true", help="the CI size: 2 nodes, 12 clients, under a minute")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--json", type=Path, help="write the account here as JSON")
    args = parser.parse_args(argv)
    plan = (Plan.short if args.short else Plan.full)(args.seconds or (25.0 if args.short else 180.0), args.seed)
    began = time.monotonic()
    report = asyncio.run(soak(plan))
    report["total_seconds"] = round(time.monotonic() - began, 1)
    report["command"] = " ".join(sys.argv)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        report["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    print(render(report))
    print(f"(the whole run took {report['total_seconds']} s)")
    for node, tail in report["logs"].items():
        print(f"--- node {node}, end of its log:\n{tail}", file=sys.stderr)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
