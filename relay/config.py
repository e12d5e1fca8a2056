"""The relay's settings, from defaults, the environment (``RELAY_*``) and flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from relay.store.database import DEFAULT_DATABASE_URL


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a relay node can be told.  Each field ``x`` reads ``RELAY_X``.

        Limits of 0 mean "no limit".  ``allowed_origins`` lists the browser origins
        (``https://example.com``) that may open the WebSocket besides the relay's own.
        ``socket_send_buffer`` caps each client socket's kernel send buffer in bytes
        (0: the kernel's autotuning, which grows it to megabytes), which bounds how many
        frames wait where the relay can no longer drop them: fresher frames, and less
        CPU spent sending stale ones (see ``benchmarks/RESULTS.md``).  ``behind_proxy`` trusts ``X-Forwarded-For`` and
        ``X-Real-Ip`` from a reverse proxy for clients' addresses.  ``node_ttl`` is how
    long a node's liveness key lives in Redis without renewal: a node killed without
    a goodbye has its streams taken offline by the others within about
    ``node_ttl * 5 / 3`` seconds.  ``analytics_refresh`` is how often (seconds; 0:
    never by itself) the node brings its analytics copy up to date.
    ``snapshot_frames`` and ``snapshot_stream_bytes`` bound the newest frames kept
    per stream for alerts' snapshots (0 frames: no snapshots), ``snapshot_node_bytes``
    all of them on the node; a frame over ``max_snapshot_bytes`` is not stored as one.
    ``retention_days`` (0: keep forever) is how old alerts get before the daily
    retention deletes them (``relay.retention``), except those marked ``keep``.
    ``token_check_interval`` is how often (seconds; 0: never) the node asks the
    database whether the tokens it trusts (cached, or of open connections) still
    exist: a token revoked where no announcement reaches (the CLI) stops working
    within that time.
    ``statistics_interval`` is how often (seconds; 0: never) the node checks that
    the database's planner statistics are current and analyses it if not
    (``relay.store.statistics``).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = "memory://"
    allowed_origins: tuple[str, ...] = ()
    ping_interval: float = 30.0
    auth_timeout: float = 10.0
    max_message_bytes: int = 8 * 1024 * 1024
    max_fps: float = 120.0
    max_alerts_per_second: float = 50.0
    max_rest_per_second: float = 100.0
    max_queued_frames: int = 8
    snapshot_frames: int = 30
    snapshot_stream_bytes: int = 4 * 1024 * 1024
    max_snapshot_bytes: int = 2 * 1024 * 1024
    snapshot_node_bytes: int = 256 * 1024 * 1024
    socket_send_buffer: int = 256 * 1024
    behind_proxy: bool = False
    max_queued_messages: int = 10_000
    status_flush_interval: float = 10.0
    token_cache_seconds: float = 60.0
    token_check_interval: float = 1.0
    node_ttl: float = 6.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_unauthenticated: int = 1000
    max_unauthenticated_per_address: int = 50
    replay_batch: int = 500
    statistics_interval: float = 60.0
    analytics_dir: str = ""
    analytics_refresh: float = 300.0
    retention_days: float = 0.0

    def analytics_folder(self) -> Path:
        """Where the partitioned copy for analytics lives: ``analytics_dir``, or beside a SQLite database
        (``relay.db`` → ``relay-analytics/``), or ``relay-analytics/`` in the working folder."""
        if self.analytics_dir:
            return Path(self.analytics_dir).expanduser()
        url = make_url(self.database_url)
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            database = Path(url.database).expanduser()
            return database.with_name(f"{database.stem}-analytics")
        return Path("relay-analytics")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``RELAY_*`` variables, then ``overrides`` (flags) that are not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = environ.get(f"RELAY_{spec.name.upper()}")
            if raw is not None and raw != "":
                values[spec.name] = _convert(spec.name, raw, cls)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _convert(name: str, raw: str, cls: type[Settings]) -> Any:
    default = getattr(cls(), name)
    try:
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ValueError(f"RELAY_{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    return raw
