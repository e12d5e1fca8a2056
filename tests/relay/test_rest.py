"""The REST API: streams, alert history with filters and cursors, export, OpenAPI."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import pytest
from openapi_spec_validator import validate

from relay.rest.openapi import DOCUMENT
from relay.wire import AlertIn
from tests.support import RelayHarness

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


async def store_alerts(relay: RelayHarness, stream_id: str, count: int, **fields: Any) -> list[str]:
    """Store alerts straight through the store (fast); returns their ids, oldest first."""
    ids = []
    for index in range(count):
        severity = fields.get("severity") or ("low", "medium", "high", "critical")[index % 4]
        metadata = {"objectType": "person" if index % 2 else "car", "confidence": 0.5}
        alert = AlertIn(
            stream_id, severity, fields.get("message", f"alert {index}"), metadata, 1_700_000_000_000 + index
        )
        ids.append((await relay.relay.store.alerts.add(alert)).alert.id)
    return ids


async def test_register_and_list_streams(relay: RelayHarness) -> None:
    _, token = await relay.user()
    response = await relay.api(
        "POST",
        "/api/streams/register",
        token=token,
        body={"deviceName": "Lobby cam", "deviceType": "mobile", "metadata": {"floor": 1}},
    )
    assert response.status == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.json["message"] == "Stream registered successfully"
    stream_id = response.json["streamId"]
    assert stream_id.startswith("stream_")
    assert URL_SAFE.match(stream_id)

    (listed,) = (await relay.api("GET", "/api/streams/list", token=token)).json["streams"]
    assert listed["id"] == stream_id
    assert listed["deviceName"] == "Lobby cam"
    assert listed["deviceType"] == "mobile"
    assert listed["status"] == "offline"
    assert listed["lastSeen"] is None
    assert listed["metadata"] == {"floor": 1}
    assert ISO_Z.match(listed["createdAt"])


async def test_alert_pages_are_stable_newest_first_and_complete(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ids = await store_alerts(relay, stream_id, 320)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "/api/alerts?limit=100" + (f"&cursor={cursor}" if cursor else "")
        body = (await relay.api("GET", query, token=token)).json
        if pages == 0:
            # New alerts arriving while someone pages do not shift later pages.
            await store_alerts(relay, stream_id, 5, message="late")
        seen += [alert["id"] for alert in body["alerts"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 4
    assert seen == list(reversed(ids)), "every alert once, newest first"
    sample = body["alerts"][0]
    assert set(sample) == {
        "id", "streamId", "severity", "message", "metadata", "timestamp", "createdAt",
        "hasSnapshot", "reviewed", "falsePositive", "keep",
    }  # fmt: skip
    assert ISO_Z.match(sample["createdAt"])


@pytest.mark.parametrize(
    ("query", "predicate"),
    [
        ("severity=high", lambda a: a["severity"] == "high"),
        ("severity=high&severity=critical", lambda a: a["severity"] in ("high", "critical")),
        ("severity=low,medium", lambda a: a["severity"] in ("low", "medium")),
        ("objectType=person", lambda a: a["metadata"]["objectType"] == "person"),
        ("q=ALERT%201", lambda a: "alert 1" in a["message"]),
    ],
)
async def test_alert_filters(relay: RelayHarness, query: str, predicate: Any) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    await store_alerts(relay, stream_id, 40)
    everything = (await relay.api("GET", "/api/alerts?limit=500", token=token)).json["alerts"]
    filtered = (await relay.api("GET", f"/api/alerts?limit=500&{query}", token=token)).json["alerts"]
    assert filtered
    assert filtered == [a for a in everything if predicate(a)]


async def test_alert_filters_by_stream_and_time(relay: RelayHarness) -> None:
    _, token = await relay.user()
    first, second = await relay.stream(token, "a"), await relay.stream(token, "b")
    await store_alerts(relay, first, 3)
    await store_alerts(relay, second, 2)
    only_second = (await relay.api("GET", f"/api/alerts?streamId={second}", token=token)).json["alerts"]
    assert {a["streamId"] for a in only_second} == {second}
    assert len(only_second) == 2

    newest = only_second[0]["createdAt"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (await relay.api("GET", f"/api/alerts?since={future}", token=token)).json["alerts"] == []
    until_newest = (await relay.api("GET", f"/api/alerts?until={newest}", token=token)).json["alerts"]
    assert all(a["createdAt"] < newest for a in until_newest)
    since_newest = (await relay.api("GET", f"/api/alerts?since={newest}", token=token)).json["alerts"]
    assert since_newest[0]["createdAt"] == newest


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=ten", "severity=urgent", "since=yesterday", "cursor=%%%", "cursor=bm9wZQ"],
)
async def test_bad_alert_queries_are_400(relay: RelayHarness, query: str) -> None:
    _, token = await relay.user()
    response = await relay.api("GET", f"/api/alerts?{query}", token=token)
    assert response.status == 400
    assert response.json["error"]["code"] == "invalid-request"


async def test_export_in_every_format(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ids = await store_alerts(relay, stream_id, 30)

    as_json = await relay.api("GET", "/api/alerts/export?format=json&severity=high", token=token)
    assert as_json.headers["Content-Type"] == "application/json"
    high = orjson.loads(as_json.body)
    assert [a["severity"] for a in high] == ["high"] * len(high)
    assert len(high) == len([i for i in range(30) if i % 4 == 2])

    as_csv = await relay.api("GET", "/api/alerts/export?format=csv", token=token)
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["Content-Disposition"]
    frame = pd.read_csv(io.BytesIO(as_csv.body))
    assert list(frame["id"]) == ids, "oldest first, every alert"

    as_parquet = await relay.api("GET", "/api/alerts/export?format=parquet", token=token)
    table = pd.read_parquet(io.BytesIO(as_parquet.body))
    assert list(table["id"]) == ids
    assert str(table["createdAt"].dtype).startswith("datetime64")
    assert set(table["objectType"]) == {"person", "car"}
    assert (await relay.api("GET", "/api/alerts/export?format=xml", token=token)).status == 400


async def test_health_and_openapi_need_no_token(relay: RelayHarness) -> None:
    health = await relay.api("GET", "/api/health")
    assert health.status == 200
    assert health.json == {"status": "ok"}
    document = await relay.api("GET", "/api/openapi.json")
    assert document.status == 200
    assert document.json == orjson.loads(orjson.dumps(DOCUMENT))


def test_the_openapi_document_is_valid_and_covers_every_route() -> None:
    from relay.app import Relay
    from relay.config import Settings

    validate(DOCUMENT)
    routes = {
        re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.replace("\\.", "."))  # (?P<name>…) is {name}
        for pattern, *_ in Relay(Settings()).routes()
        if ".*" not in pattern
    }
    assert routes == set(DOCUMENT["paths"])


async def test_metrics_count_frames_conversions_and_alerts(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    before = (await relay.api("GET", "/api/metrics", token=token)).json
    producer = await relay.producer(token, stream_id)
    viewers = [
        await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat=f) for f in ("json", "binary")
    ]
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    await producer.send_frame(stream_id)
    for viewer in viewers:
        await viewer.recv()
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m"})
    await ml.expect("alert-stored")
    after = (await relay.api("GET", "/api/metrics", token=token)).json
    assert after["frames"]["received"] - before["frames"]["received"] == 1
    assert after["frames"]["delivered"] - before["frames"]["delivered"] == 2
    assert after["frames"]["conversions"] - before["frames"]["conversions"] == 1
    assert after["alerts"]["stored"] - before["alerts"]["stored"] == 1
    assert after["connections"]["open"] == 4
    assert (await relay.api("GET", "/api/metrics")).status == 401


async def test_prometheus_metrics_need_no_token_and_count_what_happened(relay: RelayHarness) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    await relay.connect()  # not authenticated yet
    for timestamp in range(32):
        await phone.send_frame(stream_id, timestamp=timestamp)
        await viewer.recv()
    scrape = await relay.api("GET", "/metrics")
    assert scrape.status == 200
    assert scrape.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape.body.decode())
        for sample in family.samples
    }
    assert samples[("relay_connections", (("client_type", "mobile"),))] == 1
    assert samples[("relay_connections", (("client_type", "dashboard"),))] == 1
    assert samples[("relay_connections", (("client_type", "unauthenticated"),))] == 1
    assert samples[("relay_frames_received_total", ())] >= 32
    assert samples[("relay_frames_delivered_total", ())] >= 32
    assert samples[("relay_frame_delivery_seconds_count", ())] >= 2, "one frame in 16 is timed"
    assert ("relay_frames_dropped_total", (("reason", "slow_consumer"),)) in samples
