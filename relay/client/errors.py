"""The exceptions a client of the relay can meet, each naming what to do about it.

Everything derives from :class:`RelayError`, so ``except RelayError`` catches all
of them.  The split follows what the caller can do:

* :class:`AuthenticationError` — the token (or the password) is wrong or
  revoked.  Retrying cannot help, so the client stops reconnecting and raises
  it: log in again and make a new client.
* :class:`ForbiddenError` — a stream that does not exist or belongs to another
  user.  Nothing sent for it goes anywhere.
* :class:`RelayProtocolError` — the relay refused a message as malformed
  (``invalid-json``, ``invalid-message``, ``unknown-type``, ``too-large``), or
  sent something this client cannot read: a bug on one side.
* :class:`AlertRejected` — one alert the relay refused for good; resending it
  would be refused again, so it is no longer resent.
* :class:`AlertQueueFull` — too many alerts wait for the relay's confirmation
  (the relay has been unreachable for long); the new alert was *not* queued.
* :class:`RequestFailed` — a REST call answered with another error status.
* :class:`RelayUnavailable` — a REST call could not reach the relay at all.
* :class:`ClientClosed` — the client was closed while the call waited.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error raised by :mod:`relay.client`.

    ``code`` is the relay's error code when the relay gave one (``forbidden``,
    ``invalid-message``, …), ``stream_id`` and ``ref`` the stream and alert the
    error is about, when known.
    """

    def __init__(
        self, message: str, *, code: str | None = None, stream_id: str | None = None, ref: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.stream_id = stream_id
        self.ref = ref


class AuthenticationError(RelayError):
    """The relay refused the credentials: WebSocket close 1008 or HTTP 401."""


class ForbiddenError(RelayError):
    """The stream does not exist or is not the user's (``forbidden``, or REST 404)."""


class RelayProtocolError(RelayError):
    """A message the relay refused as malformed, or one from the relay this client cannot read."""


class AlertRejected(RelayError):
    """The relay refused this alert for good (its ``ref`` is in :attr:`ref`)."""


class AlertQueueFull(RelayError):
    """The bounded queue of unconfirmed alerts is full; the alert was not queued."""


class RequestFailed(RelayError):
    """A REST call answered with an error status (in :attr:`status`)."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(f"HTTP {status} {code or ''}: {message}".replace("  ", " "), code=code)
        self.status = status


class RelayUnavailable(RelayError):
    """The relay could not be reached (refused, timed out, name not found)."""


class ClientClosed(RelayError):
    """The client was closed; nothing more will be sent or received."""
