"""Analytics: the named DuckDB queries over the relay's own partitioned copy, per user, over HTTP.

The answers are checked twice: against hand-counted alerts, and against the
same queries written in pandas (``benchmarks/analytics_reference.py``) on a
seeded month of history.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pyarrow.dataset as ds
import pytest
from sqlalchemy import text

from benchmarks.analytics_reference import REFERENCE, same_rows
from benchmarks.history_data import seed
from relay.history import hourly
from relay.history.analytics import QUERIES, Analytics
from relay.history.partitioned import refresh
from relay.store import AlertFilter
from relay.store.database import create_sync_engine
from relay.wire import AlertIn
from tests.conftest import copy_of
from tests.support import RelayHarness, running_relay

DAY_ONE = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


async def _store(
    relay: RelayHarness, stream_id: str, when: datetime, severity: str = "low", **metadata: object
) -> None:
    alert = AlertIn(stream_id, severity, f"{metadata.get('objectType', 'thing')} seen", dict(metadata), timestamp=1)
    await relay.relay.store.alerts.add(alert, created_at=when)


async def _analytics(relay: RelayHarness, token: str, name: str, query: str = "") -> list[list[object]]:
    response = await relay.api("GET", f"/api/analytics/{name}{query}", token=token)
    assert response.status == 200, response.body
    assert response.json["query"] == name
    assert response.json["columns"] == list(QUERIES[name].columns)
    rows: list[list[object]] = response.json["rows"]
    return rows


async def test_each_query_counts_what_was_stored(relay: RelayHarness) -> None:
    _, token = await relay.user()
    gate, dock = await relay.stream(token, "Gate"), await relay.stream(token, "Dock")
    _, other_token = await relay.user()
    elsewhere = await relay.stream(other_token, "Not yours")
    for day in range(21):  # two people every morning at the gate for three weeks …
        for minute in (0, 30):
            await _store(relay, gate, DAY_ONE + timedelta(days=day, hours=10, minutes=minute), objectType="person",
                         confidence=0.92)  # fmt: skip
    burst = DAY_ONE + timedelta(days=21, hours=10)
    for second in range(30):  # … then thirty in one hour
        await _store(relay, gate, burst + timedelta(seconds=second * 60), "high", objectType="person", confidence=0.41)
    await _store(relay, dock, DAY_ONE + timedelta(hours=3), "critical", objectType="car", confidence=1.0)
    await _store(relay, dock, DAY_ONE + timedelta(hours=3, minutes=10), "medium")
    await _store(relay, elsewhere, DAY_ONE, "critical", objectType="dog")

    assert (await _analytics(relay, token, "top-object-types")) == [], "nothing until the copy is refreshed"
    refreshed = await relay.api("POST", "/api/analytics/refresh", token=token)
    assert refreshed.status == 200
    assert refreshed.json["alertsWritten"] == 42 + 30 + 3

    assert await _analytics(relay, token, "top-object-types") == [["person", 72, 0.9863], ["car", 1, 0.0137]]
    mix = await _analytics(relay, token, "severity-mix")
    assert sorted(map(tuple, mix)) == sorted(  # type: ignore[arg-type]
        [(gate, "low", 42, 0.5833), (gate, "high", 30, 0.4167), (dock, "medium", 1, 0.5), (dock, "critical", 1, 0.5)]
    )
    per_hour = await _analytics(relay, token, "alerts-per-hour", f"?streamId={dock}")
    assert per_hour == [["2026-11-02T03:00:00.000Z", dock, 2]]
    histogram = await _analytics(relay, token, "confidence-histogram")
    assert histogram == [["car", 0.95, 1.0, 1], ["person", 0.4, 0.45, 30], ["person", 0.9, 0.95, 42]]
    week = await _analytics(relay, token, "hour-of-week")
    assert len(week) == 168
    assert week[10] == [1, 10, 3 * 2 + 30], "Mondays at ten: three of them with two alerts, and the burst"
    assert week[3] == [1, 3, 2]
    gaps = {row[0]: row[1:] for row in await _analytics(relay, token, "time-between-alerts")}
    assert gaps[dock] == [2, 600.0, 600.0, 600.0]
    assert gaps[gate][0] == 72
    lonely = await _analytics(relay, token, "time-between-alerts", f"?streamId={dock}&severity=critical")
    assert lonely == [[dock, 1, None, None, None]], "one alert: no time between alerts to speak of"
    unusual = await _analytics(relay, token, "unusual-hours")
    assert unusual == [[gate, "2026-11-23T10:00:00.000Z", 30, 3.27, 20.77]], "the burst, and nothing else"

    theirs = await _analytics(relay, other_token, "top-object-types")
    assert theirs == [["dog", 1, 1.0]], "each user sees their own streams only"
    high_only = await _analytics(relay, token, "severity-mix", "?severity=high,critical")
    assert {(row[0], row[1]) for row in high_only} == {(gate, "high"), (dock, "critical")}
    window = f"?since={(DAY_ONE + timedelta(days=21)).isoformat()}&until={(DAY_ONE + timedelta(days=22)).isoformat()}"
    assert await _analytics(relay, token, "top-object-types", window.replace("+00:00", "Z")) == [["person", 30, 1.0]]


async def test_bad_questions_are_answered_clearly(relay: RelayHarness) -> None:
    _, token = await relay.user()
    _, other_token = await relay.user()
    theirs = await relay.stream(other_token)
    unknown = await relay.api("GET", "/api/analytics/best-guesses", token=token)
    assert unknown.status == 404
    assert "alerts-per-hour" in unknown.json["error"]["message"]
    assert (await relay.api("GET", f"/api/analytics/severity-mix?streamId={theirs}", token=token)).status == 404
    assert (await relay.api("GET", "/api/analytics/severity-mix?limit=3", token=token)).status == 400
    assert (await relay.api("GET", "/api/analytics/severity-mix?since=yesterday", token=token)).status == 400
    assert (await relay.api("GET", "/api/analytics/severity-mix")).status == 401
    assert (await relay.api("GET", "/api/analytics/refresh", token=token)).status == 405
    empty = await _analytics(relay, token, "hour-of-week")
    assert {row[2] for row in empty} == {0}, "a week of zeros, not an error, before any alert"


async def test_the_refresher_keeps_the_copy_current_by_itself(database_url: str, tmp_path: Path) -> None:
    async with running_relay(
        database_url, ping_interval=0, analytics_refresh=0.05, analytics_dir=str(tmp_path / "copy")
    ) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        await _store(relay, stream_id, datetime.now(UTC), objectType="cat")
        history = relay.relay.history
        await history.refreshed()  # a run that began before the alert was stored may not hold it …
        await history.refreshed()  # … the next one does
        response = await relay.api("GET", "/api/analytics/top-object-types", token=token)
        assert response.json["rows"] == [["cat", 1, 1.0]]
        assert response.headers["X-Analytics-As-Of"].endswith("Z")


@pytest.fixture(scope="module")
def seeded_copy(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two weeks of four streams with three bursts, and a neighbour's streams, in a partitioned copy (made once)."""
    tmp_path = tmp_path_factory.mktemp("seeded")
    engine = create_sync_engine(copy_of(sqlite_template, tmp_path).replace("+aiosqlite", ""))
    seeded = seed(engine, 20_000, streams=4, days=14, bursts=3)
    seed(engine, 2_000, streams=2, days=14, bursts=0, username="neighbour")
    with engine.begin() as connection:  # some reviewed, some of those false positives: filters to answer
        connection.execute(text("UPDATE alert SET reviewed = 1 WHERE seq % 7 = 0"))
        connection.execute(text('UPDATE alert SET "falsePositive" = 1 WHERE seq % 14 = 0'))
    folder = tmp_path / "copy"
    refresh(engine, folder, AlertFilter())
    engine.dispose()
    return folder, seeded.user_id


@pytest.mark.parametrize("name", list(QUERIES))
def test_duckdb_answers_as_pandas_does(seeded_copy: tuple[Path, str], name: str) -> None:
    folder, user_id = seeded_copy
    table = ds.dataset(folder, partitioning="hive").to_table().to_pandas()
    mine = table[table["userId"] == user_id]
    analytics = Analytics(folder)
    try:
        ours = analytics.run(name, AlertFilter(user_id=user_id)).rows
    finally:
        analytics.close()
    assert ours, "the seeded month gives every query something to say"
    assert same_rows(ours, REFERENCE[name](mine))


FILTERS: Final = {
    "streams": (
        AlertFilter(stream_ids=["stream_analyst_01", "stream_analyst_03"]),
        lambda t: t["streamId"].isin(["stream_analyst_01", "stream_analyst_03"]),
    ),
    "severities": (AlertFilter(severities=["high", "critical"]), lambda t: t["severity"].isin(["high", "critical"])),
    "a week on the hour": (
        AlertFilter(since=datetime(2026, 10, 3, 5, tzinfo=UTC), until=datetime(2026, 10, 10, 17, tzinfo=UTC)),
        lambda t: (t["createdAt"] >= "2026-10-03T05:00Z") & (t["createdAt"] < "2026-10-10T17:00Z"),
    ),
    "a range off the hour": (
        AlertFilter(since=datetime(2026, 10, 3, 5, 30, tzinfo=UTC), until=datetime(2026, 10, 10, 17, 0, 1, tzinfo=UTC)),
        lambda t: (t["createdAt"] >= "2026-10-03T05:30Z") & (t["createdAt"] < "2026-10-10T17:00:01Z"),
    ),
    "object type": (AlertFilter(object_type="car"), lambda t: t["objectType"] == "car"),
    "reviewed": (AlertFilter(reviewed=True), lambda t: t["reviewed"]),
    "not false positives": (AlertFilter(false_positive=False), lambda t: ~t["falsePositive"]),
    "text": (AlertFilter(text="CAR DET"), lambda t: t["message"].str.lower().str.contains("car det", regex=False)),
    "confidence": (AlertFilter(min_confidence=0.5, max_confidence=0.8), lambda t: t["confidence"].between(0.5, 0.8)),
}
"""Every filter of ``GET /api/alerts``, and the same in pandas: the hourly counts answer some, the day files others."""


@pytest.mark.parametrize("name", list(QUERIES))
@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_duckdb_answers_as_pandas_does_with_every_filter(
    seeded_copy: tuple[Path, str], name: str, filter_name: str
) -> None:
    folder, user_id = seeded_copy
    where, selects = FILTERS[filter_name]
    where = replace(where, user_id=user_id)
    table = ds.dataset(folder, partitioning="hive").to_table().to_pandas()
    mine = table[(table["userId"] == user_id) & selects(table)]
    analytics = Analytics(folder, cached_rows=0)
    try:
        ours = analytics.run(name, where).rows
        counted = analytics._hourly_source(where) is not None
    finally:
        analytics.close()
    assert counted == (filter_name not in ("a range off the hour", "text", "confidence"))
    assert len(mine), "the filter selects something"
    assert same_rows(ours, REFERENCE[name](mine))


def test_without_every_days_counts_the_day_files_answer(seeded_copy: tuple[Path, str], tmp_path: Path) -> None:
    """A copy of an older layout (or a refresh caught between a day and its counts) is read from the day files."""
    folder, user_id = seeded_copy
    partial = tmp_path / "copy"
    shutil.copytree(folder, partial)
    next((partial / hourly.FOLDER).glob("date=*")).rename(tmp_path / "one day's counts")
    analytics = Analytics(partial, cached_rows=0)
    try:
        assert analytics._hourly_source(AlertFilter(user_id=user_id)) is None
        ours = analytics.run("alerts-per-hour", AlertFilter(user_id=user_id)).rows
    finally:
        analytics.close()
    table = ds.dataset(partial, partitioning="hive").to_table().to_pandas()
    assert same_rows(ours, REFERENCE["alerts-per-hour"](table[table["userId"] == user_id]))


def test_the_reference_rounds_halves_as_duckdb_does() -> None:
    """At 1M alerts an hour's usual count was 11.125: DuckDB says 11.13, Python's round 11.12 (to even)."""
    import duckdb

    from benchmarks.analytics_reference import half_away

    values = [11.125, 0.5, 2.675, -1.5, 193.0, 0.0625]
    with duckdb.connect() as connection:
        theirs = [connection.execute("SELECT round(?::DOUBLE, 2)", [value]).fetchone()[0] for value in values]
    assert [half_away(value, 2) for value in values] == theirs


async def test_the_report_draws_the_answers_of_the_callers_streams(relay: RelayHarness) -> None:
    _, token = await relay.user()
    gate = await relay.stream(token, "Gate <north>")
    _, other_token = await relay.user()
    theirs = await relay.stream(other_token, "Somebody else's camera")
    for day in range(5):
        await _store(relay, gate, DAY_ONE + timedelta(days=day, hours=9), "critical", objectType="person")
    await _store(relay, theirs, DAY_ONE, "critical", objectType="dog")
    response = await relay.api("GET", "/api/alerts/report", token=token)  # no refresh asked: the report does it
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "attachment" in response.headers["Content-Disposition"]
    page = response.body.decode()
    assert "&lt;b&gt;5&lt;/b&gt; on 1 streams" in page
    assert f"Gate &amp;lt;north&amp;gt; ({gate})" in page, "streams by their (escaped) device names"
    assert "Somebody else" not in page
    assert "Alerts by hour of the week" in page
    filtered = await relay.api("GET", f"/api/alerts/report?severity=low&streamId={gate}", token=token)
    assert "no alerts in this window" in filtered.body.decode()


async def test_the_answers_leave_out_what_the_analysts_called_false_positives(relay: RelayHarness) -> None:
    _, token = await relay.user()
    gate = await relay.stream(token, "Gate")
    for minute in range(4):
        await _store(relay, gate, DAY_ONE + timedelta(minutes=minute), objectType="cat" if minute else "person")
    await relay.api("POST", "/api/analytics/refresh", token=token)
    review = {"filter": {"objectType": "cat"}, "falsePositive": True}
    assert (await relay.api("POST", "/api/alerts/review", token=token, body=review)).json["updated"] == 3
    refreshed = await relay.api("POST", "/api/analytics/refresh", token=token)
    assert refreshed.json["alertsWritten"] == 4, "the reviewed alerts' day is written again"
    assert await _analytics(relay, token, "top-object-types", "?falsePositive=false") == [["person", 1, 1.0]]
    assert await _analytics(relay, token, "top-object-types", "?reviewed=true") == [["cat", 3, 1.0]]


async def test_an_answer_is_kept_until_the_copy_changes(relay: RelayHarness) -> None:
    """Asking again reads nothing until a refresh writes the copy again; then the new alerts count."""
    _, token = await relay.user()
    gate = await relay.stream(token, "Gate")
    await _store(relay, gate, DAY_ONE + timedelta(hours=3), objectType="person")
    await relay.api("POST", "/api/analytics/refresh", token=token)
    analytics = relay.relay.history.analytics
    first = await _analytics(relay, token, "top-object-types")
    assert first == [["person", 1, 1.0]]
    reads = []
    original = analytics._execute
    analytics._execute = lambda sql, parameters: reads.append(sql) or original(sql, parameters)  # type: ignore[method-assign]
    assert await _analytics(relay, token, "top-object-types") == first
    assert await _analytics(relay, token, "top-object-types", f"?streamId={gate}") == first
    assert len(reads) == 1, "the same question again is not read again; another filter is"

    await _store(relay, gate, DAY_ONE + timedelta(hours=4), objectType="car")
    assert await _analytics(relay, token, "top-object-types") == first, "the copy has not changed yet"
    await relay.api("POST", "/api/analytics/refresh", token=token)
    assert await _analytics(relay, token, "top-object-types") == [["car", 1, 0.5], ["person", 1, 0.5]]
    assert len(reads) == 2


def test_answers_are_not_kept_when_asked_not_to(seeded_copy: tuple[Path, str]) -> None:
    """The benchmark times the queries, not the answers kept (``cached_rows=0``)."""
    folder, user_id = seeded_copy
    analytics = Analytics(folder, cached_rows=0)
    reads = []
    original = analytics._execute
    analytics._execute = lambda sql, parameters: reads.append(sql) or original(sql, parameters)  # type: ignore[method-assign]
    for _ in range(2):
        analytics.run("top-object-types", AlertFilter(user_id=user_id))
    analytics.close()
    assert len(reads) == 2
