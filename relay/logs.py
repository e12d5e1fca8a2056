"""Logging setup, the filter that keeps tokens out of every log line, and the one that keeps floods out.

Clients that cannot set headers pass their token as ``?token=``; Tornado writes
request URIs into its access and error logs.  :class:`RedactTokens` rewrites
those records before any handler sees them, wherever the relay is mounted
(``relay serve`` or inside ``panel serve``).  It reads the line as Tornado reads
the request (percent-escapes decoded: ``?%74oken=`` is ``?token=`` to Tornado,
and a credential), and it also takes out path parameters (``/ws;token=…``) and
``access_token``, whatever their case.

:class:`LimitRefusals` lets through at most a few access-log lines of ``429``
answers in a while: a flood of upgrades the relay refuses (thousands a second)
would otherwise write a line for each, filling the disk and spending the CPU
the refusals were meant to save.  The next line it lets through says how many
it left out.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from urllib.parse import unquote

_TOKEN_PARAMETER = re.compile(r"([?&;](?:access_)?token=)[^&;\s\"'()]*", re.IGNORECASE)
_TORNADO_LOGGERS = ("tornado.access", "tornado.application", "tornado.general")


def redact(text: str) -> str:
    """``/ws?token=abc&x=1`` → ``/ws?token=[redacted]&x=1``; likewise ``%74oken=``, ``;token=``."""
    if "token" not in unquote(text).lower():
        return text
    return _TOKEN_PARAMETER.sub(r"\1[redacted]", unquote(text))


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted is not message:
            record.msg = redacted
            record.args = ()
        return True


class LimitRefusals(logging.Filter):
    """At most ``most`` access-log records of ``429`` answers per ``window`` seconds."""

    def __init__(self, most: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._most = most
        self._window = window
        self._clock = clock
        self._started = -math.inf
        self._logged = 0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        arguments = record.args
        if not (isinstance(arguments, tuple) and arguments and arguments[0] == 429):
            return True  # Tornado's access records are ("%d %s %.2fms", status, summary, time)
        now = self._clock()
        if now - self._started >= self._window:
            if self._left_out:
                record.msg = f"{record.msg} (and {self._left_out} more 429 answers before it, not logged)"
            self._started, self._logged, self._left_out = now, 0, 0
        if self._logged >= self._most:
            self._left_out += 1
            return False
        self._logged += 1
        return True


def install_redaction() -> None:
    """Attach :class:`LimitRefusals` (access log) and :class:`RedactTokens` to Tornado's loggers (idempotent)."""
    access = logging.getLogger("tornado.access")
    if not any(isinstance(f, LimitRefusals) for f in access.filters):
        access.addFilter(LimitRefusals())  # before RedactTokens: what it drops is never formatted
    for name in _TORNADO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def configure(level: str = "INFO") -> None:
    """Plain one-line records on stderr, for ``relay serve`` and the CLI."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    install_redaction()
