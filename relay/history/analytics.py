"""Named DuckDB queries over the partitioned copy: what the Analytics page, the report and the API show.

Every query reads the alert table's days of Parquet
(:mod:`relay.history.partitioned`), never the live database, through one
filter — the fields of :class:`~relay.store.AlertFilter`, the same as
``GET /api/alerts`` — so a user sees only their streams, and the page, the
report and ``GET /api/analytics/{name}`` answer alike.  The filter's time range
also picks the day folders DuckDB opens, so a week costs a week's files.

Times are UTC.  DuckDB runs in this process, with its own threads (released
GIL), within :data:`MEMORY_LIMIT`, and loads nothing from the network.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import duckdb

from relay.clock import iso
from relay.history import hourly
from relay.history.partitioned import DAY_FILE, STATE_FILE
from relay.store import AlertFilter

if TYPE_CHECKING:
    import pandas as pd

MEMORY_LIMIT: Final = "1GB"
CACHED_ROWS: Final = 100_000
"""Rows of answers kept for asking again (a month's alerts-per-hour is 7,200): some 15 MB at most."""
THREADS: Final = 2
UNUSUAL_SIGMAS: Final = 3
UNUSUAL_MIN_ALERTS: Final = 10
"""An hour is unusual for a stream when it has at least this many alerts and more than the
mean plus three standard deviations of that stream's counts at the same hour of day."""
UNUSUAL_MIN_DAYS: Final = 3
"""Fewer days of history than this at an hour of day, and nothing is judged unusual there."""
CONFIDENCE_BINS: Final = 20
TOP_OBJECT_TYPES: Final = 20


@dataclass(frozen=True, slots=True)
class Query:
    """A named query: SQL over ``alerts`` (the filtered table, with ``ts`` the naive UTC ``createdAt``)."""

    name: str
    description: str
    columns: tuple[str, ...]
    sql: str
    hourly_sql: str | None = None
    """The same answer from ``hourly`` (the copy's hourly counts, :mod:`relay.history.hourly`: ``hour`` as
    hours since 1970 and ``alerts``), read instead of ``sql`` when the filter allows; None: always ``sql``."""


ISO_FORMAT = "'%Y-%m-%dT%H:%M:%S.%gZ'"
"""DuckDB's strftime for the API's time format (``%g``: milliseconds): times leave DuckDB as text."""
_HOUR_US: Final = 3_600_000_000
_EPOCH_HOUR: Final = f"epoch_us(createdAt) // {_HOUR_US}"
"""The hour (UTC) an alert was stored in, as hours since 1970: grouping by this integer, not by a
``time_bucket`` of a timestamp, halves the hourly queries (alerts-per-hour: 188 → 80 ms at 1M)."""
_UNUSUAL: Final = f"""WITH counts AS ({{counts}}),
                calendar AS (
                    SELECT streamId, unnest(range(min(hour), max(hour) + 1)) AS hour FROM counts GROUP BY streamId),
                filled AS (
                    SELECT streamId, hour, coalesce(alerts, 0) AS alerts
                    FROM calendar LEFT JOIN counts USING (streamId, hour)),
                usual AS (
                    SELECT streamId, hour % 24 AS hourOfDay, avg(alerts) AS mean, stddev_pop(alerts) AS spread,
                           count(*) AS days
                    FROM filled GROUP BY ALL)
                SELECT f.streamId, strftime(make_timestamp(f.hour * {_HOUR_US}), {ISO_FORMAT}) AS hour, f.alerts,
                       round(u.mean, 2) AS expected, round(u.mean + {UNUSUAL_SIGMAS} * u.spread, 2) AS threshold
                FROM filled f JOIN usual u ON u.streamId = f.streamId AND u.hourOfDay = f.hour % 24
                WHERE f.alerts >= {UNUSUAL_MIN_ALERTS} AND f.alerts > u.mean + {UNUSUAL_SIGMAS} * u.spread
                      AND u.days >= {UNUSUAL_MIN_DAYS}
                ORDER BY f.hour, f.streamId"""
"""unusual-hours over ``counts`` (alerts per stream and hour since 1970), from the alerts or their hourly counts."""
_SEVERITY_ORDER = "CASE severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END"

QUERIES: Final = {
    query.name: query
    for query in (
        Query(
            "alerts-per-hour",
            "Alerts per hour (UTC) and stream; hours without alerts are left out.",
            ("hour", "streamId", "alerts"),
            f"""SELECT strftime(make_timestamp(hour * {_HOUR_US}), {ISO_FORMAT}) AS hour, streamId, alerts
                FROM (SELECT {_EPOCH_HOUR} AS hour, streamId, count(*) AS alerts FROM alerts GROUP BY ALL)
                ORDER BY hour, streamId""",
            f"""SELECT strftime(make_timestamp(hour * {_HOUR_US}), {ISO_FORMAT}) AS hour, streamId, alerts
                FROM (SELECT hour, streamId, sum(alerts)::BIGINT AS alerts FROM hourly GROUP BY ALL)
                ORDER BY hour, streamId""",
        ),
        Query(
            "severity-mix",
            "Alerts per stream and severity, and each severity's share of the stream's alerts.",
            ("streamId", "severity", "alerts", "share"),
            f"""SELECT streamId, severity, count(*) AS alerts,
                       round(count(*) / sum(count(*)) OVER (PARTITION BY streamId), 4) AS share
                FROM alerts GROUP BY streamId, severity ORDER BY streamId, {_SEVERITY_ORDER}""",
            f"""SELECT streamId, severity, sum(alerts)::BIGINT AS alerts,
                       round(sum(alerts) / sum(sum(alerts)) OVER (PARTITION BY streamId), 4) AS share
                FROM hourly GROUP BY streamId, severity ORDER BY streamId, {_SEVERITY_ORDER}""",
        ),
        Query(
            "top-object-types",
            f"The {TOP_OBJECT_TYPES} most frequent object types, with their share of alerts that name one.",
            ("objectType", "alerts", "share"),
            f"""SELECT objectType, count(*) AS alerts, round(count(*) / sum(count(*)) OVER (), 4) AS share
                FROM alerts WHERE objectType IS NOT NULL
                GROUP BY objectType ORDER BY alerts DESC, objectType LIMIT {TOP_OBJECT_TYPES}""",
            f"""SELECT objectType, sum(alerts)::BIGINT AS alerts,
                       round(sum(alerts) / sum(sum(alerts)) OVER (), 4) AS share
                FROM hourly WHERE objectType IS NOT NULL
                GROUP BY objectType ORDER BY alerts DESC, objectType LIMIT {TOP_OBJECT_TYPES}""",
        ),
        Query(
            "confidence-histogram",
            f"Detector confidence per object type in {CONFIDENCE_BINS} bins over [0, 1].",
            ("objectType", "binStart", "binEnd", "alerts"),
            f"""SELECT objectType, bin / {CONFIDENCE_BINS} AS binStart, (bin + 1) / {CONFIDENCE_BINS} AS binEnd,
                       count(*) AS alerts
                FROM (SELECT objectType, least(floor(confidence * {CONFIDENCE_BINS}), {CONFIDENCE_BINS - 1}) AS bin
                      FROM alerts WHERE confidence BETWEEN 0 AND 1)
                GROUP BY ALL ORDER BY objectType NULLS LAST, binStart""",
        ),
        Query(
            "hour-of-week",
            "Alerts per ISO day of week (1 = Monday) and hour of day (UTC), all 168 cells.",
            ("dayOfWeek", "hour", "alerts"),
            """SELECT day AS dayOfWeek, hour, coalesce(alerts, 0) AS alerts
               FROM range(1, 8) AS days(day) CROSS JOIN range(0, 24) AS hours(hour)
               LEFT JOIN (SELECT isodow(ts) AS day, hour(ts) AS hour, count(*) AS alerts FROM alerts GROUP BY ALL)
                    USING (day, hour)
               ORDER BY dayOfWeek, hour""",
            f"""SELECT day AS dayOfWeek, hour, coalesce(alerts, 0) AS alerts
               FROM range(1, 8) AS days(day) CROSS JOIN range(0, 24) AS hours(hour)
               LEFT JOIN (SELECT isodow(ts) AS day, hour(ts) AS hour, sum(alerts)::BIGINT AS alerts
                          FROM (SELECT make_timestamp(hour * {_HOUR_US}) AS ts, alerts FROM hourly) GROUP BY ALL)
                    USING (day, hour)
               ORDER BY dayOfWeek, hour""",
        ),
        Query(
            "time-between-alerts",
            "Per stream: its alerts, and the mean, median and longest time between one and the next.",
            ("streamId", "alerts", "meanSeconds", "medianSeconds", "longestSeconds"),
            # Each stream's times as one list in storage order, then the gaps between neighbours: a
            # sorted aggregate per stream costs half of ``lag() OVER (PARTITION BY streamId ORDER BY
            # seq)``, whose window sorts every row with its stream's name (1M alerts: 300 → 160 ms).
            """SELECT streamId, len(times) AS alerts,
                      round(list_avg(gaps) / 1e6, 3) AS meanSeconds,
                      round(list_median(gaps) / 1e6, 3) AS medianSeconds,
                      round(list_max(gaps) / 1e6, 3) AS longestSeconds
               FROM (SELECT streamId, times,
                            list_transform(range(1, len(times)), lambda i: times[i + 1] - times[i]) AS gaps
                     FROM (SELECT streamId, list(epoch_us(createdAt) ORDER BY seq) AS times
                           FROM alerts GROUP BY streamId))
               ORDER BY streamId""",
        ),
        Query(
            "unusual-hours",
            f"Hours in which a stream raised more alerts than the mean plus {UNUSUAL_SIGMAS} standard deviations "
            f"of its counts at the same hour of day (hours without alerts count as 0; at least "
            f"{UNUSUAL_MIN_ALERTS} alerts and {UNUSUAL_MIN_DAYS} days of history).",
            ("streamId", "hour", "alerts", "expected", "threshold"),
            _UNUSUAL.format(
                counts=f"SELECT streamId, {_EPOCH_HOUR} AS hour, count(*) AS alerts FROM alerts GROUP BY ALL"
            ),
            _UNUSUAL.format(counts="SELECT streamId, hour, sum(alerts)::BIGINT AS alerts FROM hourly GROUP BY ALL"),
        ),
    )
}
"""The named queries of ``GET /api/analytics/{name}`` (names and columns fixed by the contract's shape)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A query's result, as ``GET /api/analytics/{name}`` answers it."""

    query: str
    columns: tuple[str, ...]
    rows: list[list[Any]]

    def json(self) -> dict[str, Any]:
        return {"query": self.query, "columns": list(self.columns), "rows": self.rows}

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))


class Analytics:
    """The queries over one partitioned folder.  Thread-safe: each call has its own DuckDB cursor."""

    def __init__(self, folder: Path, *, cached_rows: int = CACHED_ROWS) -> None:
        """``cached_rows``: rows of answers kept for asking again (0: none, to time the queries themselves)."""
        self.folder = folder
        self._cached_rows_at_most = cached_rows
        self._database = duckdb.connect(
            config={
                "threads": THREADS,
                "memory_limit": MEMORY_LIMIT,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                # Keep the Parquet footers read (schema, row groups, statistics) between queries: each query
                # opens every day file of its range, and they change only on a refresh.  DuckDB checks each
                # file before using what it kept: a day replaced by a refresh is read anew.
                "enable_object_cache": True,
            }
        )
        self._database.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Any, ...], Answer] = OrderedDict()
        self._cached_rows = 0

    def run(self, query: Query | str, where: AlertFilter) -> Answer:
        """``query`` (a name of :data:`QUERIES`, or one of this module's others) over what ``where`` selects.

        Answers are kept until the copy changes: every tab of the Analytics page, the report and
        ``GET /api/analytics/{name}`` ask the same few questions of a copy that changes every few
        minutes.  The answer is shared: do not change it.
        """
        if isinstance(query, str):
            query = QUERIES[query]
        version = self._version()
        key = (query.name, query.sql, _filter_key(where), version)
        with self._lock:
            if (cached := self._answers.get(key)) is not None:
                self._answers.move_to_end(key)
                return cached
        counts = self._hourly_source(where) if query.hourly_sql is not None else None
        if query.hourly_sql is not None and counts is not None:
            rows = self._execute(_defining("hourly", counts[0], query.hourly_sql), counts[1])
        else:
            rows = self._rows(query.sql, where)
        answer = Answer(query.name, query.columns, [[_jsonable(value) for value in row] for row in rows])
        if version is not None and self._version() == version:  # not a copy that changed while it was read
            self._keep(key, answer)
        return answer

    def _version(self) -> tuple[int, int, int] | None:
        """Which state of the copy this is: its state file, replaced by every run (None: no copy yet)."""
        try:
            state = (self.folder / STATE_FILE).stat()
        except FileNotFoundError:
            return None
        return state.st_ino, state.st_mtime_ns, state.st_size

    def _keep(self, key: tuple[Any, ...], answer: Answer) -> None:
        with self._lock:
            if key in self._answers or len(answer.rows) > self._cached_rows_at_most:
                return
            self._answers[key] = answer
            self._cached_rows += len(answer.rows)
            while self._cached_rows > self._cached_rows_at_most:
                _, dropped = self._answers.popitem(last=False)
                self._cached_rows -= len(dropped.rows)

    def sql(self, sql: str, where: AlertFilter, parameters: list[Any] | None = None) -> pd.DataFrame:
        """Any SQL over ``alerts`` (the filtered table) as a DataFrame: for notebooks and the page's own views."""
        statement, filter_parameters = self._over_alerts(sql, where)
        with self._cursor() as cursor:
            return cursor.execute(statement, filter_parameters + (parameters or [])).df()

    def _rows(self, sql: str, where: AlertFilter) -> list[tuple[Any, ...]]:
        return self._execute(*self._over_alerts(sql, where))

    def _execute(self, statement: str, parameters: list[Any]) -> list[tuple[Any, ...]]:
        with self._cursor() as cursor:
            return cursor.execute(statement, parameters).fetchall()

    def _over_alerts(self, sql: str, where: AlertFilter) -> tuple[str, list[Any]]:
        """``sql`` with ``alerts`` defined as the filtered table."""
        source, parameters = self._source(where)
        return _defining("alerts", source, sql), parameters

    def _hourly_source(self, where: AlertFilter) -> tuple[str, list[Any]] | None:
        """The hourly counts of what ``where`` selects as SQL, and its parameters; None where they cannot say
        exactly (a text search, a confidence range, a time range off the hour) or some day lacks its counts."""
        if where.text or where.min_confidence is not None or where.max_confidence is not None:
            return None
        if not all(moment is None or _on_the_hour(moment) for moment in (where.since, where.until)):
            return None
        days = {path.parent.name for path in self.folder.glob(f"date=*/{DAY_FILE}")}
        counted = {path.parent.name for path in (self.folder / hourly.FOLDER).glob(f"date=*/{hourly.FILE}")}
        if not days or days != counted:  # a copy of an older layout, or a refresh between a day and its counts
            return None
        conditions, parameters = _conditions(where, hour="hour")
        selected = f"""SELECT * FROM read_parquet(?, hive_partitioning = true)
                       {"WHERE " + " AND ".join(conditions) if conditions else ""}"""
        return selected, [str(self.folder / hourly.FOLDER / "date=*" / hourly.FILE), *parameters]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:  # making a cursor is not thread-safe; using one is
            return self._database.cursor()

    def _source(self, where: AlertFilter) -> tuple[str, list[Any]]:
        """The filtered table as SQL, and its parameters; an empty table while the folder holds no day."""
        conditions, parameters = _conditions(where)
        files = sorted(self.folder.glob("date=*/*.parquet"))
        if not files:
            return _EMPTY, []
        selected = f"""SELECT *, make_timestamp(epoch_us(createdAt)) AS ts
                       FROM read_parquet(?, hive_partitioning = true, union_by_name = true)
                       {"WHERE " + " AND ".join(conditions) if conditions else ""}"""
        return selected, [str(self.folder / "date=*" / "*.parquet"), *parameters]

    def close(self) -> None:
        self._database.close()


_EMPTY = """SELECT * FROM (VALUES (NULL::BIGINT, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR,
    NULL::BIGINT, NULL::VARCHAR, NULL::VARCHAR, NULL::BIGINT, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, NULL::VARCHAR,
    NULL::DOUBLE, NULL::VARCHAR, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, NULL::VARCHAR, NULL::DATE,
    NULL::TIMESTAMP))
    AS t(seq, id, streamId, deviceName, userId, streamSeq, severity, message, timestamp, eventTime, createdAt, ref,
         confidence, objectType, locationX, locationY, locationWidth, locationHeight, metadata, date, ts)
    WHERE false"""


def _defining(name: str, source: str, sql: str) -> str:
    """``sql`` with the table ``name`` defined as ``source`` (joining the query's own WITH, if any)."""
    body = sql.lstrip()
    if body[:4].upper() == "WITH":
        return f"WITH {name} AS ({source}), {body[4:]}"
    return f"WITH {name} AS ({source}) {body}"


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC already, as DuckDB's session here takes it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _on_the_hour(moment: datetime) -> bool:
    utc = _utc(moment)
    return utc.minute == utc.second == utc.microsecond == 0


def _conditions(where: AlertFilter, *, hour: str | None = None) -> tuple[list[str], list[Any]]:
    """The filter as conditions on the alert table; ``hour``: on the hourly counts instead, whose column of that
    name is the hour since 1970 (only the fields those counts keep: see :meth:`Analytics._hourly_source`)."""
    conditions: list[str] = []
    parameters: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        conditions.append(condition)
        parameters.extend(values)

    if where.user_id is not None:
        add("userId = ?", where.user_id)
    if where.stream_ids:
        add(f"streamId IN ({', '.join('?' * len(where.stream_ids))})", *where.stream_ids)
    if where.severities:
        add(f"severity IN ({', '.join('?' * len(where.severities))})", *where.severities)
    # The day folders as literals (digits and dashes only), so that DuckDB prunes files while it plans.
    if where.since is not None:
        add(f"date >= DATE '{where.since.astimezone(UTC).date().isoformat()}'")
        if hour is None:
            add("createdAt >= ?", where.since)
        else:
            add(f"{hour} >= ?", _hours_since_1970(where.since))
    if where.until is not None:
        add(f"date <= DATE '{where.until.astimezone(UTC).date().isoformat()}'")
        if hour is None:
            add("createdAt < ?", where.until)
        else:
            add(f"{hour} < ?", _hours_since_1970(where.until))
    if where.object_type:
        add("objectType = ?", where.object_type)
    if where.text:
        add("contains(lower(message), ?)", where.text.lower())
    if where.reviewed is not None:
        add("reviewed = ?", where.reviewed)
    if where.false_positive is not None:
        add("falsePositive = ?", where.false_positive)
    if where.min_confidence is not None:
        add("confidence >= ?", where.min_confidence)
    if where.max_confidence is not None:
        add("confidence <= ?", where.max_confidence)
    return conditions, parameters


def _hours_since_1970(moment: datetime) -> int:
    return (_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1)


def _filter_key(where: AlertFilter) -> tuple[Any, ...]:
    """``where`` as a dictionary key (its sequences as tuples)."""
    return tuple(tuple(value) if isinstance(value, list) else value for value in astuple(where))


def _jsonable(value: Any) -> Any:
    """Times as the API writes them (DuckDB's naive timestamps are UTC here); the rest as it is."""
    if isinstance(value, datetime):
        return iso(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    return value
