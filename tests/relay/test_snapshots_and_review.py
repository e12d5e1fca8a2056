"""The frame behind every alert, and the analyst's review of it, over real sockets and a real database."""

from __future__ import annotations

import io
import uuid

import orjson
import pyarrow.parquet as pq
import pytest

from relay.store import AlertFilter
from relay.store.alerts import Review
from tests.support import Client, RelayHarness, make_jpeg, running_relay


async def _phone_and_ml(relay: RelayHarness, token: str, stream_id: str) -> tuple[Client, Client]:
    phone = await relay.producer(token, stream_id)
    ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"], frameFormat="binary")
    return phone, ml


async def _frames(phone: Client, ml: Client, stream_id: str, shades: dict[int, int]) -> dict[int, bytes]:
    """Send a frame of each shade at its timestamp; wait until the ML service has each (so the relay holds it)."""
    return await _send(
        phone, ml, stream_id, {timestamp: make_jpeg(shade, (16, 12)) for timestamp, shade in shades.items()}
    )


async def _send(phone: Client, ml: Client, stream_id: str, jpegs: dict[int, bytes]) -> dict[int, bytes]:
    for timestamp, jpeg in jpegs.items():
        await phone.send_frame(stream_id, jpeg, timestamp=timestamp)
        while True:
            message = await ml.recv()
            if isinstance(message, tuple) and message[0]["timestamp"] == timestamp:
                break
    return jpegs


async def _alert(ml: Client, stream_id: str, **fields: object) -> dict[str, object]:
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": "person", **fields})
    return await ml.expect("alert-stored")


async def test_an_alert_is_stored_with_the_frame_it_names_or_else_the_newest(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone, ml = await _phone_and_ml(relay, token, stream_id)
    sent = await _frames(phone, ml, stream_id, {1000: 40, 2000: 120, 3000: 200})

    named = await _alert(ml, stream_id, frameTimestamp=2000)
    newest = await _alert(ml, stream_id)
    gone = await _alert(ml, stream_id, frameTimestamp=5)  # never seen: no picture rather than a wrong one

    async def snapshot(alert_id: object) -> bytes | None:
        answer = await relay.api("GET", f"/api/alerts/{alert_id}/snapshot", token=token)
        if answer.status == 404:
            return None
        assert answer.status == 200, answer.body
        assert answer.headers["Content-Type"] == "image/jpeg"
        assert "max-age" in answer.headers["Cache-Control"]
        assert "private" in answer.headers["Cache-Control"]
        return answer.body

    assert await snapshot(named["id"]) == sent[2000]
    assert await snapshot(newest["id"]) == sent[3000]
    assert await snapshot(gone["id"]) is None
    alerts = {alert["id"]: alert for alert in (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]}
    assert alerts[named["id"]]["hasSnapshot"] is True
    assert alerts[named["id"]]["frameTimestamp"] == 2000
    assert alerts[newest["id"]]["hasSnapshot"] is True
    assert "frameTimestamp" not in alerts[newest["id"]]
    assert alerts[gone["id"]]["hasSnapshot"] is False
    one = await relay.api("GET", f"/api/alerts/{named['id']}", token=token)
    assert one.status == 200
    assert one.json == alerts[named["id"]]

    _, stranger = await relay.user()
    assert (await relay.api("GET", f"/api/alerts/{named['id']}/snapshot", token=stranger)).status == 404
    assert (await relay.api("GET", f"/api/alerts/{named['id']}", token=stranger)).status == 404
    assert (await relay.api("GET", "/api/alerts/alert_nope/snapshot", token=token)).status == 404
    assert (await relay.api("GET", f"/api/alerts/{named['id']}/snapshot")).status == 401


async def test_no_snapshot_without_frames_or_over_the_size_limit(database_url: str) -> None:
    async with running_relay(database_url, max_snapshot_bytes=2000) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"], frameFormat="binary")
        before_any_frame = await _alert(ml, stream_id)
        phone = await relay.producer(token, stream_id)
        big = make_jpeg(90, (640, 480))
        assert len(big) > 2000
        await _send(phone, ml, stream_id, {10: make_jpeg(90, (16, 12)), 20: big})
        small = await _alert(ml, stream_id, frameTimestamp=10)
        too_big = await _alert(ml, stream_id, frameTimestamp=20)
        listed = (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]
        has_snapshot = {alert["id"]: alert["hasSnapshot"] for alert in listed}
        assert has_snapshot == {before_any_frame["id"]: False, small["id"]: True, too_big["id"]: False}


async def test_the_alert_message_says_whether_it_has_a_snapshot(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone, ml = await _phone_and_ml(relay, token, stream_id)
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    await _frames(phone, ml, stream_id, {7: 30})
    stored = await _alert(ml, stream_id, frameTimestamp=7)
    alert = await dashboard.until("alert", id=stored["id"])
    assert (alert["hasSnapshot"], alert["reviewed"], alert["falsePositive"], alert["frameTimestamp"]) == (
        True,
        False,
        False,
        7,
    )


async def test_a_review_is_stored_with_who_and_when_and_told_to_every_dashboard(relay: RelayHarness) -> None:
    name = f"ana{uuid.uuid4().hex[:6]}"
    _, token = await relay.user(name)
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    tabs = [await relay.consumer(token, stream_id, consumes=["alert"]) for _ in range(2)]
    stored = await _alert(ml, stream_id)
    for tab in tabs:
        await tab.until("alert", id=stored["id"])

    answer = await relay.api("PATCH", f"/api/alerts/{stored['id']}", token=token, body={"falsePositive": True})
    assert answer.status == 200, answer.body
    alert = answer.json
    assert (alert["reviewed"], alert["falsePositive"], alert["reviewedBy"]) == (True, True, name)
    assert alert["reviewedAt"].endswith("Z")
    for tab in tabs:
        update = await tab.until("alert-updated", id=stored["id"])
        assert update == {
            "type": "alert-updated",
            "id": stored["id"],
            "streamId": stream_id,
            "reviewed": True,
            "falsePositive": True,
            "reviewedBy": name,
            "reviewedAt": alert["reviewedAt"],
        }

    noted = await relay.api(
        "PATCH", f"/api/alerts/{stored['id']}", token=token, body={"note": "the neighbour's cat", "keep": True}
    )
    assert noted.status == 200
    assert (noted.json["note"], noted.json["keep"], noted.json["reviewedAt"]) == (
        "the neighbour's cat",
        True,
        alert["reviewedAt"],
    ), "a note or keep changes neither who reviewed nor when"
    cleared = await relay.api("PATCH", f"/api/alerts/{stored['id']}", token=token, body={"note": None})
    assert "note" not in cleared.json
    listed = (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]
    assert listed == [cleared.json]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reviewed": "yes"},
        {"falsePositive": 1},
        {"keep": None},
        {"note": 5},
        {"note": "x" * 2001},
        {"note": "nul \x00"},
        {"reviewedBy": "mallory"},
        [True],
        "reviewed",
    ],
)
async def test_a_bad_review_is_refused_and_changes_nothing(relay: RelayHarness, body: object) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    stored = await _alert(ml, stream_id)
    answer = await relay.api("PATCH", f"/api/alerts/{stored['id']}", token=token, body=body)
    assert answer.status == 400, answer.body
    assert answer.json["error"]
    alert = (await relay.api("GET", f"/api/alerts/{stored['id']}", token=token)).json
    assert (alert["reviewed"], alert["falsePositive"], alert["keep"], "note" in alert) == (False, False, False, False)


async def test_nobody_reviews_another_users_alert(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    stored = await _alert(ml, stream_id)
    _, stranger = await relay.user()
    answer = await relay.api("PATCH", f"/api/alerts/{stored['id']}", token=stranger, body={"reviewed": True})
    assert answer.status == 404
    bulk = await relay.api(
        "POST", "/api/alerts/review", token=stranger, body={"filter": {"streamId": stream_id}, "reviewed": True}
    )
    assert bulk.status == 404, "a stream that is not yours is not found, as on GET /api/alerts"
    everything = await relay.api("POST", "/api/alerts/review", token=stranger, body={"filter": {}, "reviewed": True})
    assert everything.json == {"updated": 0, "more": False}
    assert (await relay.api("GET", f"/api/alerts/{stored['id']}", token=token)).json["reviewed"] is False


async def test_a_batch_review_changes_what_the_filter_selects_and_counts_it(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    other_stream = await relay.stream(token, "other")
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    other_ml = await relay.consumer(token, other_stream, consumes=[], produces=["alert"])
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    for severity in ("low", "high", "high", "critical"):
        await ml.send({"type": "alert", "streamId": stream_id, "severity": severity, "message": "m"})
        await ml.expect("alert-stored")
    await _alert(other_ml, other_stream)

    body = {"filter": {"streamId": stream_id, "severity": ["high", "critical"]}, "falsePositive": True}
    answer = await relay.api("POST", "/api/alerts/review", token=token, body=body)
    assert answer.status == 200, answer.body
    assert answer.json == {"updated": 3, "more": False}
    told = {(await dashboard.until("alert-updated"))["id"] for _ in range(3)}
    again = await relay.api("POST", "/api/alerts/review", token=token, body=body)
    assert again.json == {"updated": 0, "more": False}, "only alerts it changes are counted"

    async def ids(query: str) -> set[str]:
        return {alert["id"] for alert in (await relay.api("GET", f"/api/alerts?{query}", token=token)).json["alerts"]}

    assert await ids("falsePositive=true") == told
    assert await ids("reviewed=true") == told
    assert len(await ids("reviewed=false")) == 2, "the low one and the other stream's"
    assert await ids(f"reviewed=false&streamId={stream_id}") == await ids("severity=low")
    assert (await relay.api("GET", "/api/alerts?reviewed=maybe", token=token)).status == 400

    exported = await relay.api("GET", "/api/alerts/export?format=json&falsePositive=true", token=token)
    assert {alert["id"] for alert in orjson.loads(exported.body)} == told
    parquet = pq.read_table(io.BytesIO((await relay.api("GET", "/api/alerts/export?format=parquet", token=token)).body))
    assert sorted(parquet.column("falsePositive").to_pylist()) == [False, False, True, True, True]
    assert set(parquet.column("hasSnapshot").to_pylist()) == {False}

    undone = await relay.api(
        "POST", "/api/alerts/review", token=token, body={"filter": {"falsePositive": "true"}, "reviewed": False}
    )
    assert undone.json["updated"] == 3
    assert await ids("reviewed=true") == set()
    assert await ids("falsePositive=true") == told, "unreviewing leaves the verdict to be changed on its own"


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {}},
        {"filter": {}, "reviewed": "true"},
        {"filter": {"severity": "urgent"}, "reviewed": True},
        {"filter": {"since": "yesterday"}, "reviewed": True},
        {"filter": {"color": "red"}, "reviewed": True},
        {"filter": [], "reviewed": True},
        {"reviewed": True, "note": "n"},
        {"filter": {"streamId": [5]}, "reviewed": True},
    ],
)
async def test_a_bad_batch_review_is_refused(relay: RelayHarness, body: object) -> None:
    _, token = await relay.user()
    answer = await relay.api("POST", "/api/alerts/review", token=token, body=body)
    assert answer.status == 400, answer.body


async def test_a_batch_review_is_bounded_and_says_there_is_more(relay: RelayHarness) -> None:
    user_id, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    for _ in range(5):
        await _alert(ml, stream_id)
    alerts = relay.relay.store.alerts
    changed, more = await alerts.review_matching(AlertFilter(user_id=user_id), Review("ana", reviewed=True), limit=3)
    assert (len(changed), more) == (3, True)
    assert all(alert.reviewed and alert.reviewed_by == "ana" for alert in changed)
    changed, more = await alerts.review_matching(AlertFilter(user_id=user_id), Review("ana", reviewed=True), limit=3)
    assert (len(changed), more) == (2, False)
    assert await alerts.unreviewed(user_id) == 0


@pytest.mark.redis
async def test_a_review_on_one_node_reaches_the_dashboards_on_another(
    two_nodes: tuple[RelayHarness, RelayHarness],
) -> None:
    first, second = two_nodes
    _, token = await first.user()
    stream_id = await first.stream(token)
    phone = await first.producer(token, stream_id)
    ml = await second.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"], frameFormat="binary")
    dashboard = await second.consumer(token, stream_id, consumes=["alert"])
    sent = await _frames(phone, ml, stream_id, {50: 70, 60: 80})
    stored = await _alert(ml, stream_id, frameTimestamp=50)
    assert (await first.api("GET", f"/api/alerts/{stored['id']}/snapshot", token=token)).body == sent[50], (
        "stored on the node of the ML service, seen from the phone's"
    )
    answer = await first.api("PATCH", f"/api/alerts/{stored['id']}", token=token, body={"reviewed": True})
    assert answer.status == 200
    update = await dashboard.until("alert-updated", id=stored["id"])
    assert update["reviewed"] is True
    assert update["falsePositive"] is False


@pytest.mark.parametrize("value", [-1, 2**63, 1e300, "5", True, [5], {"t": 1}])
async def test_a_hostile_frame_timestamp_is_refused_and_the_connection_stays(
    relay: RelayHarness, value: object
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send(
        {
            "type": "alert",
            "streamId": stream_id,
            "severity": "high",
            "message": "m",
            "ref": "r",
            "frameTimestamp": value,
        }
    )
    refused = await ml.expect("error", code="invalid-message", ref="r")
    assert "frameTimestamp" in refused["message"]
    await ml.send({"type": "ping"})
    await ml.expect("pong")
    assert (await relay.api("GET", "/api/alerts", token=token)).json["alerts"] == []
