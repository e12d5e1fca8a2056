"""Logging setup, and the filter that keeps tokens out of every log line.

Clients that cannot set headers pass their token as ``?token=``; Tornado writes
request URIs into its access and error logs.  :class:`RedactTokens` rewrites
those records before any handler sees them, wherever the relay is mounted
(``relay serve`` or inside ``panel serve``).
"""

from __future__ import annotations

import logging
import re

_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|access_token)=)[^&\s\"']*", re.IGNORECASE)
_TORNADO_LOGGERS = ("tornado.access", "tornado.application", "tornado.general")


def redact(text: str) -> str:
    """``/ws?token=abc&x=1`` → ``/ws?token=[redacted]&x=1``."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message.lower():
            record.msg = redact(message)
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
