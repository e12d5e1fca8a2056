"""History sorted by a column and filtered by confidence: the whole filtered history, in order, on both databases.

The metadata of stored alerts is whatever clients sent before the wire layer
checked it: a ``confidence`` may be a string, a boolean, an object, or missing.
None of that may make a filter or a sort fail, and every order must be total,
so that following the cursors page by page yields each matching alert once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from sqlalchemy import text, update

from relay.history import table as history_table
from relay.store import AlertFilter, Review, Sort, SortKey, Store
from relay.store.models import Alert
from relay.store.sorting import NO_CONFIDENCE
from relay.wire import SEVERITIES, AlertIn
from tests.support import RelayHarness

CONFIDENCES: list[Any] = [0.93, 0.5, "x", 0.5, None, "0.9", True, {"value": 1}, 0, 1, 0.25, [0.7], 0.75]
"""Numbers, ties, and the legacy values that are not numbers (None: the key is missing)."""


@pytest.fixture
async def store(database_url: str) -> Any:
    store = await Store.open(database_url)
    yield store
    await store.close()


async def fill(store: Store, user: str) -> list[Alert]:
    """Alerts over two streams of ``user`` with every kind of confidence, severity and review state."""
    streams = [(await store.streams.register(user, name, "mobile", {})).id for name in ("b-yard", "a-door")]
    stored = []
    for index, confidence in enumerate(CONFIDENCES * 2):
        metadata: dict[str, Any] = {} if confidence is None else {"confidence": confidence}
        if index % 3:
            metadata["objectType"] = ("person", "car")[index % 2]
        severity = SEVERITIES[index * 7 % len(SEVERITIES)]
        alert_in = AlertIn(streams[index % 2], severity, f"message {index * 5 % 11}", metadata, index)
        stored.append((await store.alerts.add(alert_in)).alert)
    for alert in stored[::4]:
        await store.alerts.review(alert.id, user, Review(by="tester", reviewed=True))
    for alert in stored[1::5]:
        await store.alerts.review(alert.id, user, Review(by="tester", false_positive=True))
    return [await store.alerts.get(alert.id, user) or alert for alert in stored]


def confidence_of(alert: Alert) -> float | None:
    value = alert.meta.get("confidence")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def reference_key(key: SortKey, alert: Alert, names: dict[str, str]) -> Any:
    """What each sort means, written plainly in Python."""
    if key is SortKey.STORED:
        return alert.seq
    if key is SortKey.STREAM:
        return names[alert.stream_id]
    if key is SortKey.SEVERITY:
        return SEVERITIES.index(alert.severity)
    if key is SortKey.MESSAGE:
        return alert.message
    if key is SortKey.OBJECT_TYPE:
        return alert.object_type or ""
    if key is SortKey.CONFIDENCE:
        confidence = confidence_of(alert)
        return NO_CONFIDENCE if confidence is None else confidence
    return 2 if alert.false_positive else 1 if alert.reviewed else 0


async def followed(store: Store, where: AlertFilter, sort: Sort, limit: int) -> list[str]:
    """Every alert :meth:`Alerts.sorted_page` gives, following its cursors to the end."""
    found: list[str] = []
    after = None
    while True:
        page = await store.alerts.sorted_page(where, sort, limit=limit, after=after)
        assert len(page.alerts) <= limit
        found += [alert.id for alert in page.alerts]
        if page.next_after is None:
            return found
        after = page.next_after


@pytest.mark.parametrize("key", list(SortKey))
async def test_every_sort_orders_the_whole_filtered_history(store: Store, key: SortKey) -> None:
    user = (await store.users.add_or_issue_token("sorter")).user_id
    alerts = await fill(store, user)
    other = (await store.users.add_or_issue_token("stranger")).user_id
    await fill(store, other)  # sorts only ever see the user's own alerts
    names = {stream.id: stream.device_name for stream in await store.streams.for_user(user)}
    for descending in (True, False):
        expected = sorted(alerts, key=lambda alert: (reference_key(key, alert, names), alert.seq), reverse=descending)
        where = AlertFilter(user_id=user)
        sort = Sort(key, descending)
        assert await followed(store, where, sort, limit=4) == [alert.id for alert in expected], (key, descending)
        narrowed = AlertFilter(user_id=user, severities=["low", "high"], text="message 1")
        wanted = [alert.id for alert in expected if alert.severity in ("low", "high") and "message 1" in alert.message]
        assert await followed(store, narrowed, sort, limit=3) == wanted, (key, descending)


async def test_confidence_bounds_select_numeric_confidences_only(store: Store) -> None:
    user = (await store.users.add_or_issue_token("bounder")).user_id
    alerts = await fill(store, user)
    newest_first = sorted(alerts, key=lambda alert: -alert.seq)
    for low, high in ((0.5, None), (None, 0.5), (0.5, 0.75), (0, 1), (0.8, 0.2), (0.93, 0.93)):
        where = AlertFilter(user_id=user, min_confidence=low, max_confidence=high)
        wanted = [
            alert.id
            for alert in newest_first
            if (confidence := confidence_of(alert)) is not None
            and (low is None or confidence >= low)
            and (high is None or confidence <= high)
        ]
        assert [alert.id for alert in await store.alerts.page(where, limit=100)] == wanted, (low, high)
        assert await store.alerts.count(where) == len(wanted), (low, high)
        sorted_ids = await followed(store, where, Sort(SortKey.CONFIDENCE), limit=5)
        assert sorted(sorted_ids) == sorted(wanted), (low, high)


async def test_a_cursor_survives_alerts_that_arrive_between_pages(store: Store) -> None:
    user = (await store.users.add_or_issue_token("steady")).user_id
    alerts = await fill(store, user)
    where, sort = AlertFilter(user_id=user), Sort(SortKey.CONFIDENCE, descending=True)
    first = await store.alerts.sorted_page(where, sort, limit=6)
    stream = alerts[0].stream_id
    for confidence in (0.99, 0.6, 0.0):  # one sorts before the cursor, one in the rest, one at the end
        await store.alerts.add(AlertIn(stream, "low", "late", {"confidence": confidence}, 99))
    rest = await followed_from(store, where, sort, first.next_after)
    seen = [alert.id for alert in first.alerts] + rest
    assert len(seen) == len(set(seen)), "no alert is shown twice"
    assert {alert.id for alert in alerts} <= set(seen), "no alert that was there is skipped"


async def followed_from(store: Store, where: AlertFilter, sort: Sort, after: Any) -> list[str]:
    found: list[str] = []
    while after is not None:
        page = await store.alerts.sorted_page(where, sort, limit=4, after=after)
        found += [alert.id for alert in page.alerts]
        after = page.next_after
    return found


async def test_newest_seq_is_where_new_alerts_are_counted_from(store: Store) -> None:
    user = (await store.users.add_or_issue_token("counter")).user_id
    assert await store.alerts.newest_seq(AlertFilter(user_id=user)) == 0
    alerts = await fill(store, user)
    where = AlertFilter(user_id=user, severities=["critical"])
    newest = await store.alerts.newest_seq(where)
    assert newest == max(alert.seq for alert in alerts if alert.severity == "critical")
    assert await store.alerts.count(where, after_seq=newest) == 0


async def test_rest_confidence_range_filters_listing_export_review_and_analytics(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream = await relay.stream(token)
    for confidence in (0.2, 0.5, 0.8, "0.9", None):  # a string and a missing one: legacy rows, never matched
        metadata = {} if confidence is None else {"confidence": confidence, "objectType": "person"}
        await relay.relay.store.alerts.add(AlertIn(stream, "low", f"seen {confidence}", metadata, 1))

    async def confidences(query: str) -> list[Any]:
        response = await relay.api("GET", f"/api/alerts?{query}", token=token)
        assert response.status == 200, response.body
        return sorted(alert["metadata"]["confidence"] for alert in response.json["alerts"])

    assert await confidences("minConfidence=0.5") == [0.5, 0.8]
    assert await confidences("maxConfidence=0.5") == [0.2, 0.5]
    assert await confidences("minConfidence=0.3&maxConfidence=0.6") == [0.5]
    assert await confidences("minConfidence=0.9&maxConfidence=0.1") == [], "an empty range matches nothing"
    assert await confidences("minConfidence=0&maxConfidence=1") == [0.2, 0.5, 0.8]
    assert await confidences("minConfidence=.5&maxConfidence=8e-1") == [0.5, 0.8], "JSON's ways of writing numbers"
    assert await confidences("minConfidence=%2B0.5") == [0.5, 0.8]
    for hostile in (
        "nan",
        "inf",
        "-inf",
        "x",
        "0.5 0.6",
        "2",
        "-0.5",
        "1e400",
        "0x1",
        "1" * 40,
        "0.5%00",
        "١",
        "０.５",
        "0.0_5",
        "0.5e",
        ".",
    ):
        response = await relay.api("GET", "/api/alerts?" + urlencode({"minConfidence": hostile}), token=token)
        assert response.status == 400, (hostile, response.body)
        assert response.json["error"]["message"] == "minConfidence must be a number from 0 to 1"

    exported = await relay.api("GET", "/api/alerts/export?format=json&minConfidence=0.5", token=token)
    assert sorted(alert["metadata"]["confidence"] for alert in orjson.loads(exported.body)) == [0.5, 0.8]
    for body_filter, status in (
        (b'{"minConfidence": 0.75}', 200),
        (b'{"maxConfidence": "0.3"}', 200),
        (b'{"minConfidence": 1e400}', 400),
        (b'{"minConfidence": Infinity}', 400),
        (b'{"minConfidence": NaN}', 400),
        (b'{"minConfidence": 1' + b"0" * 400 + b"}", 400),
        (b'{"minConfidence": [0.1, 0.2]}', 200),  # the last value counts, as in a query string
        (b'{"minConfidence": {"x": 1}}', 400),
    ):
        body = b'{"reviewed": true, "filter": ' + body_filter + b"}"
        review = await relay.api("POST", "/api/alerts/review", token=token, raw_body=body)
        assert review.status == status, (body_filter, review.body)
    reviewed = await relay.api("GET", "/api/alerts?reviewed=true", token=token)
    assert sorted(alert["metadata"]["confidence"] for alert in reviewed.json["alerts"]) == [0.2, 0.5, 0.8]

    await relay.api("POST", "/api/analytics/refresh", token=token)
    top = await relay.api("GET", "/api/analytics/top-object-types?minConfidence=0.5", token=token)
    assert top.status == 200, top.body
    assert [row[:2] for row in top.json["rows"]] == [["person", 2]]


async def test_numbers_beyond_a_double_in_stored_metadata_break_no_reader(store: Store) -> None:
    """JSONB keeps any number; rows written by other tools may hold ones no float can: they count as none."""
    user = (await store.users.add_or_issue_token("extremes")).user_id
    stream = (await store.streams.register(user, "cam", "mobile", {})).id
    plain = (await store.alerts.add(AlertIn(stream, "low", "plain", {"confidence": 0.5}, 1))).alert
    extremes = ["1e400", "-1e400", "1e-400", "1" + "0" * 400, "1e309", "0.5"]
    ids = []
    for index, number in enumerate(extremes):
        alert = (await store.alerts.add(AlertIn(stream, "low", f"extreme {index}", {}, 1))).alert
        ids.append(alert.id)
        async with store.engine.begin() as connection:  # as another tool would write it, bypassing the wire
            await connection.execute(
                update(Alert).where(Alert.id == alert.id).values(meta=text(f"'{{\"confidence\": {number}}}'"))
            )
    where = AlertFilter(user_id=user, min_confidence=0.2, max_confidence=0.8)
    found = {alert.id for alert in await store.alerts.page(where, limit=100)}
    assert plain.id in found
    assert ids[-1] in found, "an ordinary number written the same way still counts"
    assert await store.alerts.count(where) == len(found)
    everything = await followed(store, AlertFilter(user_id=user), Sort(SortKey.CONFIDENCE), limit=3)
    assert sorted(everything) == sorted([plain.id, *ids])
    async with store.engine.connect() as connection:
        rows = (
            await connection.execute(history_table.query(AlertFilter(user_id=user), store.engine.dialect.name))
        ).all()
    assert len(rows) == len(extremes) + 1
