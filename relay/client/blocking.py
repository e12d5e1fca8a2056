"""The same client for code without an event loop: scripts, notebooks, threads.

:class:`BlockingRelayClient` runs a :class:`~relay.client.RelayClient` on an
event loop of its own, in a daemon thread, and offers the same methods as plain
blocking calls.  Because the loop is its own, it also works inside Jupyter,
whose kernel already runs a loop in the main thread (where ``asyncio.run``
would fail), and reconnecting goes on in the background while the caller does
something else.

Callbacks given as ``on_message`` run in the client's thread; everything else
returns in the caller's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from relay.client.async_client import ImageLike, RelayClient
from relay.client.attachments import FrameForm
from relay.client.errors import ClientClosed
from relay.client.messages import Alert, Message
from relay.client.rest import AlertPage, StreamInfo
from relay.client.state import ClientStats
from relay.wire import ALERT, CONSUMABLE, DEFAULT_CONTENT_TYPE

T = TypeVar("T")


class BlockingRelayClient:
    """A :class:`RelayClient` behind blocking calls; takes the same arguments.

    ``timeout`` on a call bounds the wait (TimeoutError); None waits as long as
    it takes.  Use it as ``with BlockingRelayClient(url, token) as client:`` or
    call :meth:`connect` and :meth:`close`.
    """

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay-client-loop", daemon=True)
        self._thread.start()
        self._client: RelayClient = self._run(_make_client(url, token, options))

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self._thread.is_alive():
            coroutine.close()
            raise ClientClosed("the client was closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def client(self) -> RelayClient:
        """The asyncio client underneath (use it only from its own loop)."""
        return self._client

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    @property
    def token(self) -> str | None:
        return self._client.token

    @property
    def user_id(self) -> str | None:
        return self._client.user_id

    def connect(self, timeout: float | None = None) -> None:
        """See :meth:`RelayClient.connect`."""
        self._run(self._client.connect(), timeout)

    def close(self, *, flush_timeout: float = 0.0) -> None:
        """See :meth:`RelayClient.close`; also stops the client's thread."""
        if not self._thread.is_alive():
            return
        try:
            self._run(self._client.close(flush_timeout=flush_timeout))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    # ------------------------------------------------------------------ REST

    def login(self, username: str, password: str, timeout: float | None = None) -> str:
        return self._run(self._client.login(username, password), timeout)

    def register_stream(
        self,
        device_name: str,
        device_type: str = "mobile",
        metadata: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> str:
        return self._run(self._client.register_stream(device_name, device_type, metadata), timeout)

    def list_streams(self, timeout: float | None = None) -> list[StreamInfo]:
        return self._run(self._client.list_streams(), timeout)

    def alerts_page(
        self,
        *,
        stream_ids: Sequence[str] = (),
        severities: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        timeout: float | None = None,
    ) -> AlertPage:
        """See :meth:`RelayClient.alerts_page`."""
        return self._run(
            self._client.alerts_page(
                stream_ids=stream_ids, severities=severities, since=since, until=until, limit=limit, cursor=cursor
            ),
            timeout,
        )

    def alerts(
        self,
        *,
        stream_ids: Sequence[str] = (),
        severities: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Alert]:
        """Every matching stored alert, newest first, fetching page after page as iteration goes.

        Drives :meth:`RelayClient.alerts` on the client's loop, so the paging by
        ``nextCursor`` is written once.
        """
        pages = self._client.alerts(
            stream_ids=stream_ids, severities=severities, since=since, until=until, page_size=page_size
        )

        async def following() -> Alert | None:
            return await anext(pages, None)

        try:
            while (alert := self._run(following())) is not None:
                yield alert
        finally:
            self._run(pages.aclose())

    # ------------------------------------------------------------------ streams

    def register(
        self,
        stream_id: str,
        *,
        consumes: Collection[str] = (ALERT,),
        client_type: str = "mobile",
        timeout: float | None = None,
    ) -> None:
        self._run(self._client.register(stream_id, consumes=consumes, client_type=client_type), timeout)

    def subscribe(
        self,
        stream_id: str,
        *,
        consumes: Collection[str] = tuple(sorted(CONSUMABLE)),
        produces: Collection[str] = (),
        frame_format: FrameForm | None = None,
        client_type: str = "dashboard",
        since_alert_id: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self._run(
            self._client.subscribe(
                stream_id,
                consumes=consumes,
                produces=produces,
                frame_format=frame_format,
                client_type=client_type,
                since_alert_id=since_alert_id,
            ),
            timeout,
        )

    def unsubscribe(self, stream_id: str, timeout: float | None = None) -> None:
        self._run(self._client.unsubscribe(stream_id), timeout)

    @property
    def streams(self) -> list[str]:
        return self._client.streams

    # ------------------------------------------------------------------ sending

    def send_frame(
        self,
        frame: bytes | bytearray | memoryview | ImageLike,
        *,
        stream_id: str | None = None,
        timestamp: int | None = None,
        form: FrameForm | None = None,
        quality: int = 80,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> bool:
        return self._run(
            self._client.send_frame(
                frame, stream_id=stream_id, timestamp=timestamp, form=form, quality=quality, content_type=content_type
            )
        )

    def send_alert(
        self,
        severity: str,
        message: str,
        *,
        stream_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: int | None = None,
        ref: str | None = None,
        frame_timestamp: int | None = None,
    ) -> str:
        return self._run(
            self._client.send_alert(
                severity,
                message,
                stream_id=stream_id,
                metadata=metadata,
                timestamp=timestamp,
                ref=ref,
                frame_timestamp=frame_timestamp,
            )
        )

    def alert_stored(self, ref: str, timeout: float | None = None) -> str:
        return self._run(self._client.alert_stored(ref), timeout)

    def flush_alerts(self, timeout: float | None = None) -> None:
        self._run(self._client.flush_alerts(), timeout)

    @property
    def pending_alerts(self) -> int:
        return self._client.pending_alerts

    # ------------------------------------------------------------------ receiving

    def receive(self, timeout: float | None = None) -> Message:
        """The next message; TimeoutError after ``timeout`` seconds, ClientClosed once closed."""
        return self._run(self._client.receive(), timeout)

    @property
    def frames_dropped_incoming(self) -> int:
        return self._client.frames_dropped_incoming

    def messages(self, timeout: float | None = None) -> Iterator[Message]:
        """Messages as they come; ends when the client is closed (or nothing came for ``timeout`` seconds)."""
        while True:
            try:
                yield self.receive(timeout)
            except (ClientClosed, TimeoutError):
                return

    def __iter__(self) -> Iterator[Message]:
        return self.messages()


async def _make_client(url: str, token: str | None, options: dict[str, Any]) -> RelayClient:
    """Build the client on its own loop (its events and HTTP pool belong there)."""
    return RelayClient(url, token, **options)
