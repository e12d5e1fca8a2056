"""One relay node: its parts built and wired together, and its routes.

:class:`Relay` is built without I/O, so its :meth:`Relay.routes` can be handed
to any Tornado application at import time (``relay serve`` makes its own, see
:mod:`relay.tornado.server`; the workbench adds them to Panel's);
:meth:`Relay.start` then opens the database and the broker on the running loop.
Handlers see the node only through the narrow protocols they declare
(:class:`~relay.rest.base.RestContext`,
:class:`~relay.tornado.handler.UpgradeContext`), which :class:`Relay` satisfies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine, Sequence
from datetime import date
from typing import Any, TypeAlias

from sqlalchemy import make_url
from tornado.web import RequestHandler

from relay.broker import Broker, broker_for_url, is_in_process
from relay.clock import utcnow
from relay.config import Settings
from relay.history.service import History
from relay.hooks import Hooks
from relay.identity.authenticators import Authenticators
from relay.identity.logins import LoginGuard
from relay.identity.tokens import TokenVerifier
from relay.logs import install_redaction
from relay.ratelimit import KeyedBudgets, Quota
from relay.rest.alerts import (
    AlertHandler,
    AlertsHandler,
    ExportHandler,
    ReportHandler,
    ReviewHandler,
    SnapshotHandler,
)
from relay.rest.analytics import AnalyticsHandler, AnalyticsRefreshHandler
from relay.rest.auth import TokenHandler
from relay.rest.base import NotFoundHandler
from relay.rest.health import HealthHandler
from relay.rest.metrics import MetricsHandler, PrometheusHandler
from relay.rest.openapi import OpenApiHandler
from relay.rest.streams import ListHandler, RegisterHandler, StreamHandler
from relay.retention import Retention
from relay.routing.announcements import (
    ALERTS_DELETED,
    CONTROL_STREAM,
    STREAM_DELETED,
    TOKENS_REVOKED,
    announcement,
    body_of,
    is_announcement,
)
from relay.routing.connection import Connection
from relay.routing.continuity import AlertContinuity
from relay.routing.hub import Hub
from relay.routing.recent_frames import RecentFrames
from relay.routing.router import Router
from relay.routing.status import StatusTracker
from relay.store import Store, is_unavailable
from relay.store.models import Alert
from relay.tornado.connection import Connections
from relay.tornado.handler import UpgradeHandler
from relay.tornado.heartbeat import Heartbeat
from relay.tornado.outbox import fan_out
from relay.wire import CloseCode
from relay.wire.envelope import Envelope

log = logging.getLogger("relay")

Routes: TypeAlias = list[tuple[str, type[RequestHandler], dict[str, Any]]]
"""Tornado routes as ``Application`` and ``add_handlers`` take them."""

SHUTDOWN_GRACE = 2.0
"""Seconds :meth:`Relay.stop` waits for closing connections to be gone."""
TOKEN_REVOKED = "token revoked"
"""The reason of the close (code 1008) of a connection whose token was revoked."""
USER_REMOVED = "user removed"
"""The reason of the close (code 1008) of a connection by login cookie whose user was removed."""


class Relay:
    """The parts of one relay node; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = secrets.token_hex(4)
        self.connections = Connections()
        self.authenticators = Authenticators()
        self.hooks = Hooks()
        self.heartbeat = Heartbeat(settings.ping_interval, self.connections)
        rate = settings.max_rest_per_second
        self.rest_budgets = KeyedBudgets(rate, 2 * rate)
        self.logins = LoginGuard()
        self.waiting = Quota(per_key=settings.max_unauthenticated_per_address, total=settings.max_unauthenticated)
        self.history = History(
            settings.database_url, settings.analytics_folder(), refresh_every=settings.analytics_refresh
        )
        self.hooks.on_alert_stored(lambda _alert: self.history.note_stored())
        self._started = False
        self._statistics: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # The parts that need the loop and the database exist once start() ran.
    store: Store
    tokens: TokenVerifier
    retention: Retention
    broker: Broker
    hub: Hub
    continuity: AlertContinuity
    status: StatusTracker
    router: Router

    async def start(self) -> None:
        """Open the database (migrating it), start the broker, the status writer and the heartbeat."""
        install_redaction()
        settings = self.settings
        self.store = await Store.open(settings.database_url)
        self.broker = broker_for_url(settings.broker_url, self.node_id, liveness_ttl=settings.node_ttl)
        frames = RecentFrames(
            max_frames=settings.snapshot_frames,
            max_bytes=settings.snapshot_stream_bytes,
            max_total_bytes=settings.snapshot_node_bytes,
        )
        self.hub = Hub(on_interest=self._interest, frames=frames, fan_out=fan_out)
        self.continuity = AlertContinuity(self.hub, self.store.alerts)
        await self.broker.start(self._deliver, on_reconnect=self._broker_back)
        single_node = is_in_process(settings.broker_url)
        if single_node:
            stale = await self.store.streams.reset_statuses(utcnow())
            if stale:
                log.info("marked %d streams offline that a previous run left online", stale)
        self.status = StatusTracker(
            self.store.streams,
            self.broker,
            node_id=self.node_id,
            flush_interval=settings.status_flush_interval,
            sweep_interval=0 if single_node else settings.node_ttl / 3,
        )
        self.status.start()
        self.tokens = TokenVerifier(self.store.users, ttl=settings.token_cache_seconds)
        self.authenticators.tokens = self.tokens
        self.router = Router(settings, self.store, self.hub, self.broker, self.status, self.hooks, self.continuity)
        self.broker.interest(CONTROL_STREAM, True, frames=False)
        await self.broker.listening(CONTROL_STREAM)
        self.heartbeat.start()
        self.history.start()
        if settings.statistics_interval > 0:
            self._statistics = asyncio.create_task(self.store.statistics.keep_current(settings.statistics_interval))
        if settings.token_check_interval > 0:
            self._background(self._watch_tokens(settings.token_check_interval))
        self.retention = Retention(self.store, settings.retention_days, self._alerts_deleted)
        if settings.retention_days > 0:
            self._background(self.retention.keep_running())
        self._started = True
        log.info(
            "relay node %s ready: database %s, broker %s",
            self.node_id,
            make_url(settings.database_url).render_as_string(hide_password=True),
            settings.broker_url,
        )

    async def stop(self) -> None:
        """Finish what clients sent, close every connection with 1001 (they reconnect), write their status, close up.

        Alerts already read from a socket are stored (and confirmed) before the
        database closes; new upgrades are refused (503) meanwhile.
        """
        if not self._started:
            return
        self._started = False
        self.heartbeat.stop()
        if self._statistics is not None:
            self._statistics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._statistics
        handling = [task for connection in list(self.connections) if (task := connection.stop_reading())]
        if handling:
            await asyncio.wait(handling, timeout=SHUTDOWN_GRACE)
        for connection in list(self.connections):
            connection.shut_down(CloseCode.GOING_AWAY, "relay shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.status.close()
        await self.broker.close()
        await self.history.close()
        await self.store.close()
        await self.connections.all_gone(SHUTDOWN_GRACE)

    def announce_reviews(self, alerts: Sequence[Alert]) -> None:
        """Review changes made over REST, to the streams' dashboards on every node."""
        self.router.announce_reviews(alerts)

    async def delete_stream(self, stream_id: str, user_id: str) -> bool:
        """Delete the user's stream with its alerts; every node tells its clients of it.  False: not theirs."""
        days = await self.store.streams.delete(stream_id, user_id)
        if days is None:
            return False
        body = {"streamId": stream_id, "days": [day.isoformat() for day in days]}
        self.broker.publish(announcement(STREAM_DELETED, body, node_id=self.node_id))
        log.info("stream %s of user %s deleted with its alerts of %d days", stream_id, user_id, len(days))
        await self.history.forget_days(days)  # this node's copy before the answer; the others' as they hear of it
        return True

    def revoke_tokens(self, token_hashes: Sequence[str]) -> None:
        """These tokens were revoked (their rows deleted): every node stops trusting them and closes their sessions."""
        if token_hashes:
            self.broker.publish(announcement(TOKENS_REVOKED, {"tokenHashes": list(token_hashes)}, node_id=self.node_id))

    def _alerts_deleted(self, days: list[date]) -> None:
        """The retention deleted alerts of these days: every node's analytics copy writes them again."""
        body = {"days": [day.isoformat() for day in days]}
        self.broker.publish(announcement(ALERTS_DELETED, body, node_id=self.node_id))

    def _tokens_gone(self, token_hashes: set[str]) -> None:
        """Forget these tokens and close this node's connections that authenticated with one of them."""
        self.tokens.forget(token_hashes)
        for client in list(self.connections):
            if client.connection.token_hash in token_hashes:
                log.info("closing %s: its token was revoked", client.connection.describe())
                client.terminate(CloseCode.POLICY_VIOLATION, TOKEN_REVOKED)

    async def _watch_tokens(self, every: float) -> None:
        """Every ``every`` seconds, ask the database which trusted tokens still exist; end the others.

        This is what makes a revocation that was not announced (by the CLI, or
        lost while the broker was away) take effect within about ``every`` seconds.
        """
        while True:
            await asyncio.sleep(every)
            try:
                await self._check_credentials()
            except Exception as error:  # the watch goes on: it is what makes the CLI's revocations work
                if is_unavailable(error):
                    log.warning("cannot check tokens now (database unavailable): %s", error)
                else:
                    log.exception("token check failed; trying again in %g s", every)

    async def _check_credentials(self) -> None:
        """End what was revoked: trusted tokens that no longer exist, and sessions of users removed.

        A session that came with the workbench's login cookie has no token to
        revoke; it ends when its user is removed (``relay users remove``).
        """
        trusted = set(self.tokens.known())
        trusted.update(c.connection.token_hash for c in self.connections if c.connection.token_hash)
        if trusted and (gone := trusted - await self.store.users.existing_tokens(trusted)):
            self._tokens_gone(gone)
        by_cookie: set[str] = set()
        for client in self.connections:
            if client.connection.token_hash is None and client.connection.user_id is not None:
                by_cookie.add(client.connection.user_id)
        if not by_cookie:
            return
        removed = by_cookie - await self.store.users.existing_users(by_cookie)
        for client in list(self.connections):
            if client.connection.token_hash is None and client.connection.user_id in removed:
                log.info("closing %s: its user was removed", client.connection.describe())
                client.terminate(CloseCode.POLICY_VIOLATION, USER_REMOVED)

    def _deliver(self, envelope: Envelope) -> None:
        """What the broker brings: announcements are this node's business, the rest its clients'.

        A frame goes straight to the hub: no announcement carries one, and the
        continuity is about alerts only (two calls less per frame).
        """
        if envelope.frame is not None:
            self.hub.deliver(envelope)
            return
        if not is_announcement(envelope):
            self.continuity.deliver(envelope)
            return
        if not self._started:
            return
        try:
            self._announced(envelope)
        except Exception:  # never out into the broker's receiving loop
            log.exception("could not act on the announcement %s from %s", envelope.type, envelope.origin)

    def _announced(self, envelope: Envelope) -> None:
        body = body_of(envelope)
        if envelope.type == STREAM_DELETED and isinstance(stream_id := body.get("streamId"), str):
            self.router.stream_deleted(stream_id, self._clients())
            if not envelope.origin.startswith(f"{self.node_id}:"):  # the deleting node did it before answering
                self._forget_days(body.get("days"))
        elif envelope.type == ALERTS_DELETED:
            self._forget_days(body.get("days"))
        elif envelope.type == TOKENS_REVOKED and isinstance(hashes := body.get("tokenHashes"), list):
            self._tokens_gone({key for key in hashes if isinstance(key, str)})

    def _forget_days(self, days: object) -> None:
        """Write these days (ISO dates, from an announcement) of this node's analytics copy again."""
        if isinstance(days, list) and all(isinstance(day, str) for day in days):
            self._background(self.history.forget_days([date.fromisoformat(day) for day in days]))

    def _broker_back(self) -> None:
        """The broker reconnected: what was announced meanwhile may be lost, so look it up again."""
        self.continuity.catch_up()
        self.router.owners.forget_all()
        self._background(self._forget_deleted_streams())

    async def _forget_deleted_streams(self) -> None:
        """Streams this node's clients use that were deleted while the broker was away end as if announced."""
        carried = {stream_id for client in self._clients() for stream_id in (*client.permits, *client.subscriptions)}
        existing = await self.store.streams.existing(carried)
        for stream_id in carried - existing:
            self.router.stream_deleted(stream_id, self._clients())

    def _clients(self) -> list[Connection]:
        return [connection.connection for connection in self.connections]

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside what the node does; its failure is logged, not lost."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background work failed", exc_info=error)

    def client_types(self) -> list[str]:
        """The client type of each open connection, for the metrics."""
        return [connection.client_type for connection in self.connections]

    def broker_backlog(self) -> int:
        return self.broker.backlog

    def _interest(self, stream_id: str, frames: bool, interested: bool) -> None:
        """A stream got its first consumer here of its frames or of its other messages, or lost its last one."""
        self.broker.interest(stream_id, interested, frames=frames)
        if not interested and not frames:
            self.continuity.forget(stream_id)  # nobody here follows its alerts any more

    @property
    def ready(self) -> bool:
        return self._started

    def routes(self) -> Routes:
        """The relay's Tornado routes, for this node's application or another one's."""
        node = {"node": self}
        return [
            (r"/api/health", HealthHandler, node),
            (r"/api/metrics", MetricsHandler, node),
            (r"/metrics", PrometheusHandler, node),
            (r"/api/openapi\.json", OpenApiHandler, node),
            (r"/api/auth/token", TokenHandler, node),
            (r"/api/streams/register", RegisterHandler, node),
            (r"/api/streams/list", ListHandler, node),
            (r"/api/streams/ws", UpgradeHandler, node),
            (r"/api/streams/(?P<stream_id>[^/]+)", StreamHandler, node),
            (r"/api/alerts", AlertsHandler, node),
            (r"/api/alerts/export", ExportHandler, node),
            (r"/api/alerts/report", ReportHandler, node),
            (r"/api/alerts/review", ReviewHandler, node),
            (r"/api/alerts/(?P<alert_id>[^/]+)/snapshot", SnapshotHandler, node),
            (r"/api/alerts/(?P<alert_id>[^/]+)", AlertHandler, node),
            (r"/api/analytics/refresh", AnalyticsRefreshHandler, node),
            (r"/api/analytics/(?P<name>[^/]+)", AnalyticsHandler, node),
            (r"/api/.*", NotFoundHandler, node),
        ]
