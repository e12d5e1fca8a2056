"""Alert history that looks like a real one, written fast: for the analytics benchmark and the tests.

Ten phones over thirty days by default, each with its own rate that follows
the hour of the day (quiet nights, busy afternoons), Poisson counts per hour,
skewed severities and object types, detector confidences that lean high — and
a few *bursts*: hours in which one stream raised many times its usual number
of alerts, which the analytics' "unusual hours" must find.

Rows go in through bulk SQLAlchemy Core inserts of the real models (no ORM
objects), numbered per stream as the relay numbers them, in the order of
their ``createdAt`` (so the storage order follows time, as it does live).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import Engine, insert, select, update

from relay.store.models import Alert, User, VideoStream

SEVERITIES: Final = ("low", "medium", "high", "critical")
SEVERITY_SHARES: Final = (0.55, 0.28, 0.13, 0.04)
OBJECT_TYPES: Final = ("person", "car", "bicycle", "dog", "truck", "cat")
OBJECT_SHARES: Final = (0.45, 0.25, 0.10, 0.08, 0.07, 0.05)
HOURLY_PROFILE: Final = 1 + 0.8 * np.sin((np.arange(24) - 8) / 24 * 2 * np.pi)
"""Relative rate by hour of day (UTC): lowest before dawn, highest in the afternoon."""
INSERT_ROWS: Final = 5_000


@dataclass(frozen=True)
class Burst:
    stream_id: str
    hour: datetime
    alerts: int


@dataclass
class Seeded:
    user_id: str
    stream_ids: list[str]
    start: datetime
    days: int
    alerts: int = 0
    bursts: list[Burst] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    """Each stream's rate relative to the others: a day added later keeps them (else it looks unusual)."""
    last_seqs: list[int] = field(default_factory=list)
    """Each stream's last ``streamSeq`` so far (filled in as the rows are made)."""


def seed(
    engine: Engine,
    alerts: int,
    *,
    streams: int = 10,
    days: int = 30,
    bursts: int = 6,
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    username: str = "analyst",
    random_seed: int = 7,
) -> Seeded:
    """About ``alerts`` alerts for a new user ``username`` on ``streams`` new streams (ids ``stream_<n>``)."""
    seeded, batches = plan(
        alerts, streams=streams, days=days, bursts=bursts, start=start, username=username, random_seed=random_seed
    )
    with engine.begin() as connection:
        connection.execute(insert(User).values(id=seeded.user_id, username=username))
        connection.execute(
            insert(VideoStream),
            [
                {
                    "id": stream_id,
                    "userId": seeded.user_id,
                    "deviceName": device_name(index),
                    "deviceType": "mobile",
                    "metadata": {},
                    "status": "offline",
                    "lastAlertSeq": 0,
                }
                for index, stream_id in enumerate(seeded.stream_ids)
            ],
        )
    for rows in batches:
        with engine.begin() as connection:
            connection.execute(insert(Alert), rows)
        seeded.alerts += len(rows)
    with engine.begin() as connection:
        for stream_id, last in zip(seeded.stream_ids, seeded.last_seqs, strict=True):
            connection.execute(update(VideoStream).where(VideoStream.id == stream_id).values(last_alert_seq=last))
    return seeded


def device_name(index: int) -> str:
    return f"Camera {index + 1}"


def plan(
    alerts: int,
    *,
    streams: int = 10,
    days: int = 30,
    bursts: int = 6,
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    username: str = "analyst",
    random_seed: int = 7,
) -> tuple[Seeded, Iterator[list[dict[str, Any]]]]:
    """What :func:`seed` stores, without a database: the history and its alert rows in insert batches.

    ``seed`` stores exactly these rows; the analytics benchmark also writes them
    straight into a partitioned copy, where a database of that size would take
    too long to fill.  ``alerts`` is not counted here (the caller counts the rows).
    """
    rng = np.random.default_rng(random_seed)
    user_id = f"user_{username}"
    stream_ids = [f"stream_{username}_{index:02d}" for index in range(streams)]
    seeded = Seeded(user_id, stream_ids, start, days)
    weights = rng.uniform(0.3, 1.7, streams)
    seeded.weights = [float(weight) for weight in weights]
    counts = _hourly_counts(weights, alerts / days, days, rng)
    for _ in range(bursts):
        stream, hour = int(rng.integers(streams)), int(rng.integers(24, days * 24 - 24))
        extra = int(max(40, 8 * counts[stream].mean()))
        counts[stream, hour] += extra
        seeded.bursts.append(Burst(stream_ids[stream], start + timedelta(hours=hour), int(counts[stream, hour])))
    seeded.last_seqs = [0] * streams
    return seeded, _rows(rng, counts, stream_ids, start, seeded.last_seqs)


def add_days(engine: Engine, seeded: Seeded, alerts: int, *, days: int = 1, random_seed: int = 11) -> int:
    """About ``alerts`` more alerts on ``seeded``'s streams, on the ``days`` days after its last one.

    What a day of live traffic adds, numbered on from where each stream stopped
    (as the relay numbers them) and stored after everything else: what an
    incremental export must pick up.  Returns how many were added.
    """
    rng = np.random.default_rng(random_seed)
    start = seeded.start + timedelta(days=seeded.days)
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(VideoStream.id, VideoStream.last_alert_seq).where(VideoStream.id.in_(seeded.stream_ids))
            ).all()
        )
    next_seq = [int(stored[stream_id]) for stream_id in seeded.stream_ids]
    counts = _hourly_counts(np.array(seeded.weights), alerts / days, days, rng)
    added = 0
    for rows in _rows(rng, counts, seeded.stream_ids, start, next_seq):
        with engine.begin() as connection:
            connection.execute(insert(Alert), rows)
        added += len(rows)
    with engine.begin() as connection:
        for stream_id, last in zip(seeded.stream_ids, next_seq, strict=True):
            connection.execute(update(VideoStream).where(VideoStream.id == stream_id).values(last_alert_seq=last))
    seeded.days += days
    seeded.alerts += added
    return added


def _hourly_counts(weights: np.ndarray, per_day: float, days: int, rng: np.random.Generator) -> np.ndarray:
    """Alerts per stream and hour: Poisson around each stream's rate times the hour's profile, ``per_day`` a day."""
    rates = np.outer(weights, HOURLY_PROFILE)
    rates *= per_day / rates.sum()
    return rng.poisson(np.tile(rates, days))


def _rows(
    rng: np.random.Generator, counts: np.ndarray, stream_ids: list[str], start: datetime, next_seq: list[int]
) -> Iterator[list[dict[str, Any]]]:
    """Insert batches, hour after hour, each hour's alerts in the order of their time."""
    batch: list[dict[str, Any]] = []
    start_us = int(start.timestamp() * 1_000_000)
    for hour in range(counts.shape[1]):
        per_stream = counts[:, hour]
        total = int(per_stream.sum())
        if not total:
            continue
        streams = np.repeat(np.arange(len(stream_ids)), per_stream)
        offsets = rng.integers(0, 3_600_000_000, total)
        order = np.argsort(offsets, kind="stable")
        streams, offsets = streams[order], offsets[order]
        severities = rng.choice(len(SEVERITIES), total, p=SEVERITY_SHARES)
        kinds = rng.choice(len(OBJECT_TYPES), total, p=OBJECT_SHARES)
        confidences = np.round(rng.beta(5, 2, total), 4)
        boxes = np.round(rng.uniform(0, 0.7, (total, 2)), 4)
        for index in range(total):
            stream = int(streams[index])
            next_seq[stream] += 1
            created_us = start_us + hour * 3_600_000_000 + int(offsets[index])
            kind = OBJECT_TYPES[kinds[index]]
            batch.append(
                {
                    "id": f"alert_{stream_ids[stream][-12:]}_{next_seq[stream]:09d}",
                    "streamId": stream_ids[stream],
                    "streamSeq": next_seq[stream],
                    "severity": SEVERITIES[severities[index]],
                    "message": f"{kind} detected",
                    "metadata": {
                        "objectType": kind,
                        "confidence": float(confidences[index]),
                        "location": {
                            "x": float(boxes[index, 0]),
                            "y": float(boxes[index, 1]),
                            "width": 0.2,
                            "height": 0.3,
                        },
                    },
                    "timestamp": created_us // 1000 - 40,
                    "ref": None,
                    "createdAt": datetime.fromtimestamp(created_us / 1_000_000, UTC),
                }
            )
            if len(batch) == INSERT_ROWS:
                yield batch
                batch = []
    if batch:
        yield batch
