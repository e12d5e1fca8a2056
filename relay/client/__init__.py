"""A Python client of the relay that a user can trust on a bad network.

``RelayClient`` (asyncio) and ``BlockingRelayClient`` (scripts, notebooks) have
the same methods::

    async with RelayClient("http://127.0.0.1:8000", token) as client:
        stream_id = await client.register_stream("Lobby phone")
        await client.register(stream_id)
        await client.send_frame(jpeg_bytes)            # or a numpy image
        async for message in client:                   # Alert, Frame, StreamStatus, ErrorReport
            ...

They reconnect by themselves (backoff with full jitter), re-register and
re-subscribe, resume alerts with ``sinceAlertId`` so that none is missed, and
resend every alert until the relay confirms it stored it.  See
``docs/MOBILE_CLIENT.md`` for a tour.  numpy and OpenCV are imported only when
images (not JPEG bytes) are sent or asked for.
"""

from relay.client.async_client import RelayClient
from relay.client.backoff import Backoff
from relay.client.blocking import BlockingRelayClient
from relay.client.errors import (
    AlertQueueFull,
    AlertRejected,
    AuthenticationError,
    ClientClosed,
    ForbiddenError,
    RelayError,
    RelayProtocolError,
    RelayUnavailable,
    RequestFailed,
)
from relay.client.messages import Alert, ErrorReport, Frame, Message, StreamStatus
from relay.client.rest import AlertPage, StreamInfo
from relay.client.state import ClientStats

__all__ = [
    "Alert",
    "AlertPage",
    "AlertQueueFull",
    "AlertRejected",
    "AuthenticationError",
    "Backoff",
    "BlockingRelayClient",
    "ClientClosed",
    "ClientStats",
    "ErrorReport",
    "ForbiddenError",
    "Frame",
    "Message",
    "RelayClient",
    "RelayError",
    "RelayProtocolError",
    "RelayUnavailable",
    "RequestFailed",
    "StreamInfo",
    "StreamStatus",
]
