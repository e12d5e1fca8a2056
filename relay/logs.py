"""Logging setup, and the filter that keeps tokens out of every log line.

Clients that cannot set headers pass their token as ``?token=``; Tornado writes
request URIs into its access and error logs.  :class:`RedactTokens` rewrites
those records before any handler sees them, wherever the relay is mounted
(``relay serve`` or inside ``panel serve``).  It reads the line as Tornado reads
the request (percent-escapes decoded: ``?%74oken=`` is ``?token=`` to Tornado,
and a credential), and it also takes out path parameters (``/ws;token=…``) and
``access_token``, whatever their case.
"""

from __future__ import annotations

import logging
import re
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


def install_redaction() -> None:
    """Attach :class:`RedactTokens` to Tornado's loggers (idempotent)."""
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
